//! One question asked of several holders (`oar federate`): three `oar serve` on loopback, each
//! with a different synthetic operator's records (seeds and market shares), combined and
//! compared with the truth over the union of their records; a holder that is down yields a
//! refusal, or with `--partial` a result labelled partial, never a silent undercount.

mod common;

use common::serve::{holder, setup};
use common::{approval, bundle, component, World};
use oar_host::federation::{self, HolderRelease};
use oar_host::server;
use oar_host::synth::cdr::CdrSpec;
use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Output};

/// The operators: name, rows (market share) and seed.
const OPERATORS: [(&str, usize, u64); 3] = [
    ("telco-a", 240_000, 11),
    ("telco-b", 160_000, 22),
    ("telco-c", 80_000, 33),
];

fn oar(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_oar"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

/// `oar federate submit` of the population bundle to the holders in `holders.toml`.
fn submit(d: &Path, params: &str, out: &str) -> Output {
    oar(
        d,
        &[
            "federate",
            "submit",
            "--holders",
            "holders.toml",
            "--bundle",
            "population.oarb",
            "--approval",
            "approval.json",
            "--params",
            params,
            "--out",
            out,
        ],
    )
}

fn said(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Distinct subscribers per (region, day) in one operator's records.
fn truth(descriptor: &Path) -> HashMap<(String, String), f64> {
    use common::truth::{day_text, hour_and_day, i64s, read_parquet, strings};
    let df = read_parquet(&descriptor.with_file_name("cdr.parquet"));
    let mut people: HashMap<(String, String), std::collections::HashSet<i64>> = HashMap::new();
    for ((who, region), at) in i64s(&df, "subscriber_id")
        .into_iter()
        .zip(strings(&df, "region"))
        .zip(i64s(&df, "timestamp"))
    {
        people
            .entry((region, day_text(hour_and_day(at).1)))
            .or_default()
            .insert(who);
    }
    people
        .into_iter()
        .map(|(k, v)| (k, v.len() as f64))
        .collect()
}

/// Released (region, day) → (value, half-width) from a release or combination CSV.
fn released(csv: &str) -> HashMap<(String, String), (f64, f64)> {
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let at = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let (r, d, v, lo, hi, st) = (
        at("region"),
        at("day"),
        at("subscribers"),
        at("subscribers_ci95_low"),
        at("subscribers_ci95_high"),
        at("status"),
    );
    lines
        .map(|l| l.split(',').collect::<Vec<_>>())
        .filter(|f| f[st] == "released")
        .map(|f| {
            let half = (f[hi].parse::<f64>().unwrap() - f[lo].parse::<f64>().unwrap()) / 2.0;
            (
                (f[r].to_string(), f[d].to_string()),
                (f[v].parse().unwrap(), half),
            )
        })
        .collect()
}

fn mean_relative_error(
    got: &HashMap<(String, String), (f64, f64)>,
    truth: &HashMap<(String, String), f64>,
) -> f64 {
    let errors: Vec<f64> = got
        .iter()
        .map(|(k, (v, _))| (v - truth[k]).abs() / truth[k].max(1.0))
        .collect();
    errors.iter().sum::<f64>() / errors.len().max(1) as f64
}

#[test]
fn three_holders_combine_to_the_truth_over_their_union_and_a_missing_one_is_never_silent() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let w = World::new(2, 3);
    let mut servers = Vec::new();
    let mut truths = Vec::new();
    for (name, rows, seed) in OPERATORS {
        let home = d.join(name);
        std::fs::create_dir_all(&home).unwrap();
        let data = CdrSpec {
            rows,
            seed,
            ..CdrSpec::default()
        }
        .write(&home.join("cdr"))
        .unwrap();
        truths.push(truth(&data));
        // Each holder its own policy (the same parties here), ledger and audit log.
        let mut config = setup(&home, &mut World::new(2, 3), |_| {});
        config.datasets = vec![data];
        servers.push(server::start(config).unwrap());
    }
    // The requester's keys, the module, its approval (holder C is given its own copy).
    w.requester.write(d).unwrap();
    holder().write(d).unwrap();
    let b = bundle(&w, component("population"));
    b.write(&d.join("population.oarb")).unwrap();
    let a = approval(&w, &b, 2);
    a.write(&d.join("approval.json")).unwrap();
    a.write(&d.join("approval-c.json")).unwrap();
    let holders_file = |servers: &[server::RunningServer]| {
        let mut s = String::new();
        for (i, (name, _, _)) in OPERATORS.iter().enumerate() {
            s.push_str(&format!(
                "[[holders]]\nname = \"{name}\"\nurl = \"http://{}\"\nholder_key = \"holder.pub\"\nkey = \"stats-office.key\"\n{}\n",
                servers[i].addr(),
                if i == 2 { "approval = \"approval-c.json\"\n" } else { "" }
            ));
        }
        s
    };
    std::fs::write(d.join("holders.toml"), holders_file(&servers)).unwrap();
    let submitted = submit(d, r#"{"epsilon": 1.0}"#, "run.json");
    assert!(submitted.status.success(), "{}", said(&submitted));
    let fetched = oar(
        d,
        &["federate", "fetch", "--run", "run.json", "--out", "fed"],
    );
    assert!(fetched.status.success(), "{}", said(&fetched));
    assert!(!said(&fetched).contains("PARTIAL"));

    // Against the truth over the union: each person is at one operator, so the union's count
    // per cell is the sum of the operators' counts.
    let mut union: HashMap<(String, String), f64> = HashMap::new();
    for t in &truths {
        for (k, n) in t {
            *union.entry(k.clone()).or_default() += n;
        }
    }
    let combined = released(
        &std::fs::read_to_string(d.join("fed/combined/population_by_region_day.csv")).unwrap(),
    );
    // A cell any operator withheld (a small region at the small operator) stays withheld.
    assert!(combined.len() >= 15, "{} cells released", combined.len());
    let inside = combined
        .iter()
        .filter(|(k, (v, half))| (v - union[*k]).abs() <= *half)
        .count();
    assert!(
        inside as f64 >= 0.9 * combined.len() as f64,
        "{inside} of {} combined cells hold the truth within their 95% interval",
        combined.len()
    );
    let combined_error = mean_relative_error(&combined, &union);
    let mut report = vec![format!(
        "combined: mean relative error {combined_error:.4} over {} cells",
        combined.len()
    )];
    let mut errors = Vec::new();
    for (i, (name, _, _)) in OPERATORS.iter().enumerate() {
        let alone = released(
            &std::fs::read_to_string(
                d.join(format!("fed/holders/{name}/population_by_region_day.csv")),
            )
            .unwrap(),
        );
        // On the cells the combination released, at the same epsilon.
        let alone: HashMap<_, _> = alone
            .into_iter()
            .filter(|(k, _)| combined.contains_key(k))
            .collect();
        let error = mean_relative_error(&alone, &truths[i]);
        report.push(format!(
            "{name} alone: mean relative error {error:.4} on the same cells"
        ));
        errors.push(error);
    }
    // Combined counts are larger and their noise grows only as the root of the holders' count:
    // the combination is expected to be about 0.87 of the largest operator's relative error
    // (noise varies run to run, hence the margin) and far below the smallest's.
    assert!(combined_error < errors[2], "{report:?}");
    assert!(combined_error < 1.5 * errors[0], "{report:?}");
    // The federation step itself (verify three releases and combine them), timed.
    let started = std::time::Instant::now();
    let releases: Vec<HolderRelease> = OPERATORS
        .iter()
        .map(|(name, _, _)| {
            HolderRelease::open(
                name,
                holder().public(),
                &d.join(format!("fed/holders/{name}")),
            )
            .unwrap()
        })
        .collect();
    federation::combine(&releases).unwrap();
    report.push(format!(
        "verifying and combining 3 releases: {:.1} ms",
        started.elapsed().as_secs_f64() * 1e3
    ));
    println!("{}", report.join("\n"));

    // Anyone re-checks it offline; an edited combined file is caught.
    let verified = oar(d, &["federate", "verify", "fed"]);
    assert!(verified.status.success(), "{}", said(&verified));
    assert!(said(&verified).starts_with("OK: 3 holder release(s) verify"));
    let csv = d.join("fed/combined/population_by_region_day.csv");
    let original = std::fs::read(&csv).unwrap();
    std::fs::write(
        &csv,
        [&original[..], b"R99,2026-03-02,1,,,,released,\n"].concat(),
    )
    .unwrap();
    let tampered = oar(d, &["federate", "verify", "fed"]);
    assert!(!tampered.status.success());
    assert!(
        said(&tampered).contains("differs from what the holders' releases combine to"),
        "{}",
        said(&tampered)
    );
    std::fs::write(&csv, original).unwrap();

    // Holder C goes down: the run is refused as a whole unless a partial result is asked for,
    // and then it says so everywhere.
    servers.pop().unwrap().shutdown();
    let submitted = submit(d, r#"{"epsilon": 0.5}"#, "run2.json");
    assert!(submitted.status.success(), "{}", said(&submitted));
    assert!(
        said(&submitted).contains("telco-c: not submitted (unreachable)"),
        "{}",
        said(&submitted)
    );
    let refused = oar(
        d,
        &["federate", "fetch", "--run", "run2.json", "--out", "fed2"],
    );
    assert!(!refused.status.success());
    assert!(
        said(&refused).contains("not every holder answered: telco-c (unreachable)"),
        "{}",
        said(&refused)
    );
    assert!(!d.join("fed2/combined").exists() && !d.join("fed2/combined-partial").exists());
    let partial = oar(
        d,
        &[
            "federate",
            "fetch",
            "--run",
            "run2.json",
            "--out",
            "fed3",
            "--partial",
        ],
    );
    assert!(partial.status.success(), "{}", said(&partial));
    assert!(said(&partial).contains("PARTIAL: combines 2 of 3 holders; missing telco-c"));
    assert!(d
        .join("fed3/combined-partial/population_by_region_day.csv")
        .exists());
    assert!(!d.join("fed3/combined").exists());
    let provenance: federation::Provenance =
        serde_json::from_slice(&std::fs::read(d.join("fed3/federation.json")).unwrap()).unwrap();
    assert!(provenance.partial);
    assert_eq!(provenance.holders[2].outcome, "unreachable");
    let verified = oar(d, &["federate", "verify", "fed3"]);
    assert!(said(&verified).contains("PARTIAL"), "{}", said(&verified));
    // Holder B's committee revokes the approval: B no longer runs the module, and the
    // combination is refused rather than made of the others alone.
    let mut list = oar_host::revocation::RevocationList::empty();
    list.add(
        oar_host::revocation::RevokedKind::Approval,
        &hex::encode(a.record.digest()),
        "withdrawn by the committee",
        chrono::Utc::now(),
    );
    let mut signed = oar_host::revocation::SignedRevocations::new(list);
    signed.sign(&holder());
    let (status, body) = common::serve::raw(
        &common::serve::admin_url(&servers[1]),
        "POST",
        "/admin/revocations",
        &serde_json::to_vec(&signed).unwrap(),
        &[("authorization", format!("Bearer {}", common::serve::ADMIN))],
    );
    assert_eq!(status, 200, "{body}");
    let submitted = submit(d, r#"{"epsilon": 0.25}"#, "run-revoked.json");
    assert!(submitted.status.success(), "{}", said(&submitted));
    let refused = oar(
        d,
        &[
            "federate",
            "fetch",
            "--run",
            "run-revoked.json",
            "--out",
            "fed-revoked",
        ],
    );
    assert!(!refused.status.success());
    assert!(
        said(&refused).contains("telco-b (failed)"),
        "{}",
        said(&refused)
    );

    for s in servers {
        s.shutdown();
    }
}

/// The combination rules on tables made by hand: counts add, a cell withheld at one holder is
/// withheld, means are left out, variances add.
#[test]
fn counts_add_withheld_cells_stay_withheld_and_means_are_left_out() {
    use oar_guest::table::{Accuracy, ReleaseInfo, Row, Suppression, Table};
    use oar_host::release::provenance::{Provenance, QueryFigures, ValueColumn, ValueKind};
    use oar_host::release::{Release, ReleasedTable};
    let holder_release = |name: &str, values: &[(&str, Option<f64>)], scale: f64| {
        let mut t = Table::new(["region"], ["n", "avg"]);
        for (region, v) in values.iter().copied() {
            t.rows.push(match v {
                Some(v) => Row {
                    keys: vec![region.into()],
                    values: vec![v, 1.0],
                    suppressed: None,
                },
                None => Row {
                    keys: vec![region.into()],
                    values: vec![],
                    suppressed: Some(Suppression::Dominance),
                },
            });
        }
        let info = ReleaseInfo {
            epsilon: 1.0,
            min_units: 10,
            accuracy: vec![Accuracy {
                column: "n".into(),
                mechanism: "m".into(),
                noise_scale: scale,
                ci95_half_width: scale * 3.0,
            }],
            ..Default::default()
        };
        t.release = Some(info.clone());
        HolderRelease {
            holder: name.into(),
            key: holder().public(),
            manifest: oar_host::release::signed::ReleaseManifest {
                job_id: name.into(),
                holder: holder().public(),
                files: Default::default(),
                params_sha256: Some("p".into()),
                reuses: None,
            },
            release: Release {
                job_id: name.into(),
                module: "m".into(),
                module_version: "1".into(),
                module_hash: "h".into(),
                approval_digest: "a".into(),
                requester: "r".into(),
                created_at: "now".into(),
                epsilon_spent: vec![],
                epsilon_total: 1.0,
                queries: vec![QueryFigures {
                    query: 0,
                    dataset: "cdr".into(),
                    release: info,
                    columns: vec![
                        ValueColumn {
                            name: "n".into(),
                            kind: ValueKind::CountUnits,
                        },
                        ValueColumn {
                            name: "avg".into(),
                            kind: ValueKind::Mean,
                        },
                    ],
                }],
                tables: vec![ReleasedTable {
                    name: "t".into(),
                    table: t,
                    provenance: Provenance::Query { query: 0 },
                }],
                reused_by: None,
                params_sha256: Some("p".into()),
            },
        }
    };
    let c = federation::combine(&[
        holder_release("a", &[("North", Some(100.0)), ("South", Some(50.0))], 3.0),
        holder_release("b", &[("North", Some(40.0)), ("South", None)], 4.0),
    ])
    .unwrap();
    let t = &c.tables[0];
    assert_eq!(t.table.value_columns, ["n"]);
    assert_eq!(t.left_out[0].0, "avg");
    assert_eq!(t.table.rows[0].values, [140.0]);
    assert_eq!(t.table.rows[1].suppressed, Some(Suppression::Dominance));
    assert_eq!(t.withheld_by_holder["b"], 1);
    let acc = &t.table.release.as_ref().unwrap().accuracy[0];
    assert!((acc.noise_scale - 5.0).abs() < 1e-12 && (acc.ci95_half_width - 15.0).abs() < 1e-12);
    // Different parameters are not the same question.
    let same = [("North", Some(1.0)), ("South", Some(1.0))];
    let mut other = holder_release("b", &same, 1.0);
    other.manifest.params_sha256 = Some("q".into());
    assert!(federation::combine(&[holder_release("a", &same, 1.0), other]).is_err());
    // With totals: North withheld at one holder would be Total minus South in the combination;
    // the re-run secondary suppression withholds another cell so it is not.
    let c = federation::combine(&[
        holder_release(
            "a",
            &[
                ("North", Some(30.0)),
                ("South", Some(50.0)),
                ("Total", Some(80.0)),
            ],
            1.0,
        ),
        holder_release(
            "b",
            &[
                ("North", None),
                ("South", Some(60.0)),
                ("Total", Some(75.0)),
            ],
            1.0,
        ),
    ])
    .unwrap();
    let t = &c.tables[0];
    assert_eq!(t.withheld_on_combined_margins, 1, "{:?}", t.table.rows);
    let withheld = t
        .table
        .rows
        .iter()
        .filter(|r| r.suppressed.is_some())
        .count();
    assert_eq!(withheld, 2);
}
