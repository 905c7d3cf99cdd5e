#!/usr/bin/env python3
# The seed's PowerShell loop (issue 7), as a script:
#
#     $users = Import-Csv -Path users.csv
#     foreach ($user in $users) {
#         try { Revoke-MgUserSignInSession -UserId $user.UserPrincipalName ...; "Success" }
#         catch { "Failed" }
#     }
#
# one person at a time and, for each person, one provider after another:
# `sever revoke --targets <connector> <user> --json --yes` per call (the real
# binary, a new process per call, as a cmdlet call is one per person per
# provider), against whatever the configuration ($SEVER_CONFIG, else
# ./sever.toml) points at.  Python 3 standard library only.
#
# Usage: bench/seed_loop.sh --csv users.csv [--bin target/release/sever]
#            [--connectors okta,entra,google_workspace,slack_enterprise,miro]
#            [--limit N] [--out results.csv]
# Prints one line per call to --out (if given) and, last, one summary line:
#     SEED_LOOP people=<n> calls=<n> failed=<n> seconds=<wall time>
# A call "failed" when `sever revoke` exits non-zero (the request did not
# complete), like the cmdlet throwing into the seed's `catch`.

import argparse
import csv
import json
import subprocess
import sys
import time

DEFAULT_CONNECTORS = "okta,entra,google_workspace,slack_enterprise,miro"


def people(path, limit):
    # Import-Csv: the first column is UserPrincipalName (a BOM is allowed).
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = csv.DictReader(f)
        n = 0
        for row in rows:
            upn = (row.get("UserPrincipalName") or "").strip()
            if not upn:
                continue
            yield upn
            n += 1
            if limit is not None and n >= limit:
                return


def outcome(stdout):
    """The connector's outcome label from `sever revoke --json`."""
    try:
        req = json.loads(stdout)
    except ValueError:
        return "", "no JSON"
    status = str(req.get("status", ""))
    results = req.get("results") or []
    if not results:
        return status, ""
    o = results[0].get("outcome")
    if isinstance(o, dict):
        label = o.get("kind") or o.get("outcome") or next(iter(o), "")
    else:
        label = o if o is not None else "pending"
    return status, str(label)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--csv", required=True)
    ap.add_argument("--bin", default="sever")
    ap.add_argument("--connectors", default=DEFAULT_CONNECTORS)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    connectors = [c for c in a.connectors.split(",") if c]
    out = open(a.out, "w", newline="") if a.out else None
    w = csv.writer(out) if out else None
    if w:
        w.writerow(["user", "connector", "exit", "status", "outcome", "seconds"])
    n_people = calls = failed = 0
    t0 = time.monotonic()
    for user in people(a.csv, a.limit):
        n_people += 1
        for c in connectors:
            t = time.monotonic()
            p = subprocess.run(
                [a.bin, "revoke", user, "--targets", c, "--json", "--yes",
                 "--reason", "seed loop"],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            took = time.monotonic() - t
            calls += 1
            if p.returncode != 0:
                failed += 1
            status, label = outcome(p.stdout)
            if w:
                w.writerow([user, c, p.returncode, status, label, f"{took:.4f}"])
            if p.returncode != 0 and p.returncode != 1:
                # Not a revocation outcome: a usage or configuration error.
                sys.stderr.write(f"{user} {c}: exit {p.returncode}: {p.stderr.strip()}\n")
    took = time.monotonic() - t0
    if out:
        out.close()
    print(f"SEED_LOOP people={n_people} calls={calls} failed={failed} seconds={took:.3f}")


if __name__ == "__main__":
    main()
