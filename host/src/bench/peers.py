"""The population query in Python, for `oar bench --peers`: exact with Python Polars (both
engines, the best counts) and as a user-level DP release with OpenDP-Python on the same Parquet
files. Prints one JSON object with medians in seconds.

Usage: python peers.py FILES_JSON KEYS_JSON REPEAT
"""

import json
import statistics
import sys
import time
import warnings

import opendp.prelude as dp
import polars as pl

files = json.loads(sys.argv[1])
keys = json.loads(sys.argv[2])
repeat = int(sys.argv[3])
dp.enable_features("contrib")
warnings.simplefilter("ignore", FutureWarning)


def scan():
    return pl.scan_parquet(files)


def exact(engine):
    return (
        scan()
        .with_columns(pl.col("timestamp").dt.date().alias("day"))
        .group_by(["region", "day"])
        .agg(pl.col("subscriber_id").n_unique())
        .collect(engine=engine)
    )


def opendp_release():
    # The same question at the same privacy unit: each subscriber is one identifier, in at most
    # 14 (region, day) cells, counted once per cell; the keys are the public domain.
    public = pl.DataFrame(
        {"region": keys["region"], "day": keys["day"]},
        schema={"region": pl.String, "day": pl.String},
    ).with_columns(pl.col("day").str.to_date())
    context = dp.Context.compositor(
        data=scan().select(
            "subscriber_id", "region", pl.col("timestamp").dt.date().alias("day")
        ),
        privacy_unit=dp.unit_of(contributions=1, identifier="subscriber_id"),
        privacy_loss=dp.loss_of(epsilon=1.0),
        split_evenly_over=1,
    )
    query = (
        context.query()
        .truncate_num_groups(14, by=["region", "day"], keep="first")
        .truncate_per_group(1, by=["region", "day"], keep="first")
        .group_by(["region", "day"])
        .agg(dp.len())
        .with_keys(public, on=["region", "day"])
    )
    return query.release().collect()


def median(f):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


out = {
    "polars_version": pl.__version__,
    "opendp_version": dp.__version__ if hasattr(dp, "__version__") else "0.16",
    "polars_in_memory": median(lambda: exact("in-memory")),
    "polars_streaming": median(lambda: exact("streaming")),
    "opendp": median(opendp_release),
}
print(json.dumps(out))
