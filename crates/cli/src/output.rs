//! Rendering for the terminal: aligned tables for people, JSON for programs.
//! JSON goes to stdout alone so it can be piped; nothing here prints a secret
//! because no secret reaches the values rendered.

use serde::Serialize;
use sever_core::{Engine, RequestSummary, RevocationRequest, TestReport};

pub fn print_json<T: Serialize + ?Sized>(value: &T) {
    match serde_json::to_string_pretty(value) {
        Ok(s) => println!("{s}"),
        Err(e) => eprintln!("error: cannot render JSON: {e}"),
    }
}

/// Left-aligned columns separated by two spaces; the last column is not padded.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let n = cells.len();
        let mut s = String::new();
        for (i, (cell, w)) in cells.into_iter().zip(&widths).enumerate() {
            if i + 1 == n {
                s.push_str(&cell);
            } else {
                s.push_str(&format!("{cell:<w$}  "));
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = line(header.iter().map(|h| h.to_string()).collect());
    for row in rows {
        out.push_str(&line(row.clone()));
    }
    out
}

pub fn print_request(req: &RevocationRequest, json: bool) {
    if json {
        print_json(req);
        return;
    }
    let took = match (req.started_at, req.finished_at) {
        (Some(s), Some(f)) => format!(" in {:.2} s", (f - s).num_milliseconds() as f64 / 1000.0),
        _ => String::new(),
    };
    println!(
        "Request {}  {}  {}{}",
        req.id, req.username, req.status, took
    );
    if !req.reason.as_str().is_empty() {
        println!("Reason: {}", req.reason.as_str());
    }
    let rows: Vec<Vec<String>> = req
        .results
        .iter()
        .map(|r| {
            let attempts = r.attempts.len();
            vec![
                r.instance.to_string(),
                r.outcome
                    .as_ref()
                    .map(|o| o.label().to_string())
                    .unwrap_or_else(|| "pending".into()),
                attempts.to_string(),
                r.outcome
                    .as_ref()
                    .map(|o| o.detail())
                    .unwrap_or_else(|| "not finished yet".into()),
            ]
        })
        .collect();
    print!(
        "{}",
        table(&["CONNECTOR", "OUTCOME", "CALLS", "DETAIL"], &rows)
    );
}

pub fn print_requests(list: &[RequestSummary], json: bool) {
    if json {
        print_json(list);
        return;
    }
    if list.is_empty() {
        println!("No requests yet.");
        return;
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|r| {
            vec![
                r.id.to_string(),
                r.created_at.format("%Y-%m-%d %H:%M:%S").to_string(),
                r.username.to_string(),
                r.status.to_string(),
                format!("{}/{}", r.connectors - r.failed, r.connectors),
                r.channel.as_str().to_string(),
            ]
        })
        .collect();
    print!(
        "{}",
        table(
            &[
                "REQUEST",
                "CREATED (UTC)",
                "USER",
                "STATUS",
                "OK",
                "CHANNEL"
            ],
            &rows
        )
    );
}

#[derive(Serialize)]
struct ConnectorRow<'a> {
    name: &'a str,
    provider: &'a str,
    enabled: bool,
}

pub fn print_connectors(engine: &Engine, json: bool) {
    let rows: Vec<ConnectorRow> = engine
        .connectors()
        .map(|(c, enabled)| ConnectorRow {
            name: c.instance().as_str(),
            provider: c.provider().as_str(),
            enabled,
        })
        .collect();
    if json {
        print_json(&rows);
        return;
    }
    if rows.is_empty() {
        println!(
            "No connectors configured. Add [[connectors]] to sever.toml, or run `sever demo`."
        );
        return;
    }
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.name.to_string(),
                r.provider.to_string(),
                if r.enabled { "yes" } else { "no" }.to_string(),
            ]
        })
        .collect();
    print!("{}", table(&["NAME", "PROVIDER", "ENABLED"], &cells));
}

pub fn print_test(name: &str, report: &TestReport, json: bool) {
    if json {
        print_json(
            &serde_json::json!({"connector": name, "ok": report.ok(), "checks": report.checks}),
        );
        return;
    }
    let rows: Vec<Vec<String>> = report
        .checks
        .iter()
        .map(|c| {
            vec![
                if c.ok { "ok" } else { "FAIL" }.to_string(),
                c.name.clone(),
                c.detail.clone(),
            ]
        })
        .collect();
    print!("{}", table(&["", "CHECK", "DETAIL"], &rows));
    println!(
        "{name}: {}",
        if report.ok() {
            "all checks passed"
        } else {
            "some checks failed"
        }
    );
}

#[cfg(test)]
mod tests {
    #[test]
    fn tables_align_columns_and_do_not_pad_the_last() {
        let t = super::table(
            &["A", "BB"],
            &[
                vec!["xxx".into(), "y".into()],
                vec!["z".into(), "long".into()],
            ],
        );
        assert_eq!(t, "A    BB\nxxx  y\nz    long\n");
    }
}
