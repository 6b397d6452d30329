"""Federation from Python: three holders (each its own `oar serve`, keys, committee, ledger),
the same component asked everywhere, releases verified and combined; the Python combination
equals `oar federate`'s on the same releases; a missing holder is never silent."""

from __future__ import annotations

import csv
import io

import pytest

import oar_client
from oar_client import Client
from oar_client.federation import Federation, Holder, combine, load_release

from conftest import Holder as Server


@pytest.fixture(scope="session")
def servers(holder, tmp_path_factory):
    others = [Server(tmp_path_factory.mktemp(name)) for name in ("telco-b", "telco-c")]
    yield {"telco-a": holder, "telco-b": others[0], "telco-c": others[1]}
    for s in others:
        s.stop()


def member(name: str, s) -> Holder:
    return Holder(
        name,
        Client(s.url, key=s.requester_key, holder=s.holder_pub),
        approval=s.approvals["population"],
        bundle=s.bundles["population"],
    )


def test_three_holders_combine_and_python_agrees_with_oar_federate(servers, tmp_path):
    fed = Federation([member(n, s) for n, s in servers.items()])
    combined = fed.submit(None, {"epsilon": 1.0}).fetch(progress=False)
    assert not combined.partial
    table = combined.tables["population_by_region_day"]
    released = table.filter(table["status"] == "released")
    assert released.height > 0
    one = combined.releases["telco-a"].table("population_by_region_day")
    half_one = (one["subscribers_ci95_high"] - one["subscribers"]).drop_nulls()[0]
    half = (released["subscribers_ci95_high"] - released["subscribers"])[0]
    assert abs(half - half_one * 3 ** 0.5) < 1e-6, "three equal variances add"
    assert [h.outcome for h in combined.holders] == ["included"] * 3

    # The same three holders through `oar federate`; Python combines the releases it fetched
    # and must find exactly its numbers.
    lines = []
    for name, s in servers.items():
        lines += [
            "[[holders]]", f'name = "{name}"', f'url = "{s.url}"', f'holder_key = "{s.holder_pub}"',
            f'key = "{s.requester_key}"', f'approval = "{s.approvals["population"]}"', "",
        ]
    (tmp_path / "holders.toml").write_text("\n".join(lines))
    a = servers["telco-a"]
    # Each holder here trusts its own author, so `oar federate` is given telco-a's bundle and
    # only telco-a takes it; a partial combination still exercises the same rules.
    a.cli("federate", "submit", "--holders", str(tmp_path / "holders.toml"), "--bundle", str(a.bundles["population"]),
          "--params", '{"epsilon": 1.0}', "--out", str(tmp_path / "run.json"))
    a.cli("federate", "fetch", "--run", str(tmp_path / "run.json"), "--out", str(tmp_path / "fed"), "--partial")
    a.cli("federate", "verify", str(tmp_path / "fed"))
    rust_csv = (tmp_path / "fed" / "combined-partial" / "population_by_region_day.csv").read_text()
    rust = {tuple(r[:2]): r for r in csv.reader(io.StringIO(rust_csv))}
    mine = combine({"telco-a": load_release(str(tmp_path / "fed" / "holders" / "telco-a"), a.holder_pub)})
    df = mine["tables"]["population_by_region_day"]
    assert df.height == len(rust) - 1
    for row in df.iter_rows(named=True):
        theirs = rust[(row["region"], row["day"])]
        assert theirs[6] == row["status"] and theirs[7] == row["suppressed_because"]
        if row["status"] == "released":
            assert abs(float(theirs[2]) - row["subscribers"]) < 1e-3
            assert abs(float(theirs[4]) - row["subscribers_ci95_high"]) < 1e-3


def test_a_holder_that_is_down_is_never_a_silent_undercount(servers):
    holders = [member(n, s) for n, s in servers.items() if n != "telco-c"]
    down = Client("http://127.0.0.1:9", key=servers["telco-c"].requester_key, holder=servers["telco-c"].holder_pub, timeout=5)
    holders.append(Holder("telco-c", down, approval=servers["telco-c"].approvals["population"], bundle=servers["telco-c"].bundles["population"]))
    run = Federation(holders).submit(None, {"epsilon": 0.5})
    with pytest.raises(oar_client.FederationError, match=r"telco-c \(unreachable\)"):
        run.fetch(progress=False)
    partial = run.fetch(partial=True, progress=False)
    assert partial.partial
    assert partial.provenance["holders"][2]["outcome"] == "unreachable"
    assert "population_by_region_day" in partial.tables
