"""A real ``oar serve`` on loopback for the client's tests, started from the ``oar`` binary in
``$OAR`` with a fresh data folder (its starter policy, keys and synthetic call records), and the
example modules population and od-flows signed by its author and approved by two of its three
committee members with ``oar sign`` / ``oar approve``. ``$OAR_COMPONENTS`` is the folder of
built components; ``tests/clients.rs`` sets both."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "clients" / "python"))


def _need(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.fail(f"${name} is not set: run these tests through `cargo test --test clients` (tests/clients.rs sets it)")
    return value


class Holder:
    """One running holder: its URL, folder and keys, and the signed modules."""

    def __init__(self, root: Path, name: str = "holder"):
        self.oar = _need("OAR")
        self.components = Path(_need("OAR_COMPONENTS"))
        self.root = root
        self.data = root / "data"
        env = dict(os.environ, OAR_LISTEN="127.0.0.1:0", OAR_ADMIN_LISTEN="127.0.0.1:0", OAR_LOG="warn")
        self.process = subprocess.Popen(
            [self.oar, "serve", "--data", str(self.data)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
        )
        said = []
        for line in self.process.stdout:
            said.append(line)
            found = re.search(r"listening on (https?://\S+) ", line)
            if found:
                self.url = found.group(1)
                break
        else:
            raise RuntimeError("oar serve did not start:\n" + "".join(said))
        # Keep draining its output, so that a full pipe never blocks the server.
        threading.Thread(target=lambda: [None for _ in self.process.stdout], daemon=True).start()
        self.keys = self.data / "keys"
        self.holder_pub = self.keys / "holder.pub"
        self.requester_key = self.keys / "stats-office.key"
        self.bundles = {}
        self.approvals = {}
        for module, component in (("population", "population"), ("od-flows", "od_flows")):
            self.bundles[module], self.approvals[module] = self.sign(module, component)

    def cli(self, *args: str) -> str:
        out = subprocess.run([self.oar, *args], capture_output=True, text=True, cwd=self.root)
        if out.returncode != 0:
            raise RuntimeError(f"oar {' '.join(args)} failed:\n{out.stdout}{out.stderr}")
        return out.stdout

    def sign(self, module: str, component: str) -> tuple[Path, Path]:
        bundle = self.root / f"{module}.oarb"
        approval = self.root / f"{module}.approval.json"
        self.cli("sign", "--component", str(self.components / f"{component}.wasm"),
                 "--manifest", str(REPO / "example-algorithms" / module / "manifest.toml"),
                 "--key", str(self.keys / "author.key"), "--out", str(bundle))
        for member in ("committee-1", "committee-2"):
            self.cli("approve", "--bundle", str(bundle), "--key", str(self.keys / f"{member}.key"),
                     "--approval", str(approval))
        return bundle, approval

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=60)


@pytest.fixture(scope="session")
def holder(tmp_path_factory):
    h = Holder(tmp_path_factory.mktemp("holder"))
    yield h
    h.stop()
