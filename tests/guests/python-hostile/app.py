"""A hostile Python module for tests/sandbox.rs, one attack per `mode` parameter. Each must end
as its Rust twin (tests/guests/*) does: stopped, capped or refused, with nothing released."""

from oar_guest import Context, col

OUTPUT = "population_by_region_day"


def spin(ctx: Context) -> None:
    x = len(ctx.datasets())
    while True:
        x = (x * 6364136223846793005 + 1) & 0xFFFFFFFFFFFFFFFF
        if x == 42:
            return


def hog(ctx: Context) -> None:
    hoard = []
    failures = 0
    while failures < 100:
        try:
            hoard.append(bytearray(16 << 20))
        except MemoryError:
            # Catching it gets no more memory: free a block, ask again, and finally pretend all
            # went well.
            failures += 1
            if hoard:
                hoard.pop()


def recurse(ctx: Context) -> None:
    import sys

    sys.setrecursionlimit(10**7)

    def deeper(n: int) -> int:
        return deeper(n + 1) + 1

    deeper(0)


def read_file(ctx: Context) -> None:
    with open("/etc/passwd") as f:
        ctx.log(f.read())


def open_socket(ctx: Context) -> None:
    import socket

    s = socket.create_connection(("127.0.0.1", 80))
    s.send(b"rows")


def flood(ctx: Context) -> None:
    for _ in range(10_000):
        table = ctx.dataset("cdr").group_by(["region"]).count_units("subscribers").release(0.01)
    ctx.emit(OUTPUT, table)


MODES = {
    "spin": spin,
    "hog": hog,
    "recurse": recurse,
    "file": read_file,
    "socket": open_socket,
    "flood": flood,
}


def run(ctx: Context, params: dict) -> None:
    MODES[params["mode"]](ctx)
