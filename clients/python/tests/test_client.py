"""The client against a real ``oar serve`` (see conftest.py)."""

from __future__ import annotations

import json

import pytest

import oar_client
from oar_client import Client


def client(holder, **kw) -> Client:
    return Client(holder.url, key=holder.requester_key, holder=holder.holder_pub, **kw)


def test_the_requester_sees_its_catalogue_and_budget(holder):
    c = client(holder)
    names = [d["name"] for d in c.catalogue()]
    assert names == ["cdr"]
    budget = {b["dataset"]: b for b in c.budget()}
    assert budget["cdr"]["total"] == 10.0
    assert 0 < budget["cdr"]["remaining"] <= 10.0


def test_population_then_od_flows_end_to_end_as_dataframes(holder):
    c = client(holder)
    before = {b["dataset"]: b["remaining"] for b in c.budget()}
    seen = []
    for module, table, value in (
        ("population", "population_by_region_day", "subscribers"),
        ("od-flows", "od_flows", "subscribers"),
    ):
        module_hash = c.upload_bundle(holder.bundles[module])
        assert c.attach_approval(holder.approvals[module])["signatures"] == 2
        run = c.submit(module_hash, {})
        release = run.fetch(wait=300, progress=lambda job: seen.append(job["status"]))
        assert release.manifest["job_id"] == run.id
        df = release.table(table)
        for column in (value, f"{value}_ci95_low", f"{value}_ci95_high", f"{value}_noise_scale", "status", "suppressed_because"):
            assert column in df.columns, df.columns
        released = df.filter(df["status"] == "released")
        assert released.height > 0
        assert (released[f"{value}_ci95_low"] < released[value]).all()
        withheld = df.filter(df["status"] == "suppressed")
        assert set(withheld["suppressed_because"].to_list()) <= {"minimum_units", "dominance", "secondary", "derived"}
        pandas = release.table(table, library="pandas")
        assert list(pandas.columns) == df.columns and len(pandas) == df.height
    assert seen[-1] == "succeeded"
    after = {b["dataset"]: b["remaining"] for b in c.budget()}
    assert after["cdr"] < before["cdr"]
    jobs = [r["job_id"] for r in c.register()]
    assert run.id in jobs
    assert c.register_head["seq"] > 0


def test_refusals_carry_the_server_s_problem_type(holder):
    stranger = Client(holder.url, key="11" * 32, holder=holder.holder_pub)
    with pytest.raises(oar_client.Unauthenticated) as refused:
        stranger.budget()
    assert refused.value.type.endswith("/problems/unauthenticated")
    assert refused.value.status == 401
    with pytest.raises(oar_client.Forbidden):
        client(holder).fetch("no-such-job")
    with pytest.raises(oar_client.MalformedRequest):
        client(holder).submit("0" * 64, {"x": 1}, every_seconds=1)


def test_a_release_that_does_not_verify_is_not_returned(holder):
    c = client(holder)
    module_hash = c.upload_bundle(holder.bundles["population"])
    c.attach_approval(holder.approvals["population"])
    run = c.submit(module_hash, {"epsilon": 0.25})
    run.wait(300, progress=False)
    # Verified against another key: refused, nothing returned.
    wrong = Client(holder.url, key=holder.requester_key, holder=holder.keys / "author.pub")
    with pytest.raises(oar_client.NotVerified, match="not by the holder"):
        wrong.fetch(run.id)
    release = c.fetch(run.id)
    files = dict(release.files)
    csv = next(n for n in files if n.endswith(".csv"))
    files[csv] = files[csv] + b"R99,2026-03-02,1,,,,released,\n"
    with pytest.raises(oar_client.NotVerified, match="altered"):
        oar_client.verify_files(files, c.holder, run.id)
    with pytest.raises(oar_client.NotVerified, match="signed for job"):
        oar_client.verify_files(release.files, c.holder, "another-job")


def test_keys_are_taken_as_files_or_hex_and_the_wrong_file_is_named(holder):
    pub = json.loads(holder.holder_pub.read_text())["public"]
    Client(holder.url, key=holder.requester_key, holder=pub)
    with pytest.raises(oar_client.OarError, match="public key"):
        Client(holder.url, key=holder.holder_pub, holder=holder.holder_pub)
    with pytest.raises(oar_client.OarError, match="secret key file"):
        Client(holder.url, key=holder.requester_key, holder=holder.requester_key)
