//! The sliver of OData `$filter` that Graph callers send: `field eq 'literal'` clauses joined
//! by `or`.
//!
//! Worth its own parser because quoting is where connectors go wrong: a quote inside a literal
//! is doubled (`'o''neil@example.com'`), and a literal cut short by an unencoded `#` (the rest
//! became a URL fragment) must fail the way Graph fails, not match something.

/// `field eq 'literal'` clauses joined by `or`: all the filters Sever sends.
pub(crate) fn parse_filter(filter: &str) -> Result<Vec<(String, String)>, String> {
    let chars: Vec<char> = filter.chars().collect();
    let syntax = |pos: usize| format!("Syntax error at position {pos} in '{filter}'.");
    let mut pos = 0;
    let mut clauses = Vec::new();
    let skip_ws = |pos: &mut usize| {
        while chars.get(*pos).is_some_and(|c| c.is_whitespace()) {
            *pos += 1;
        }
    };
    let word = |pos: &mut usize| {
        let start = *pos;
        while chars
            .get(*pos)
            .is_some_and(|c| c.is_alphanumeric() || matches!(c, '/' | '.' | '_'))
        {
            *pos += 1;
        }
        chars[start..*pos].iter().collect::<String>()
    };
    loop {
        skip_ws(&mut pos);
        let field = word(&mut pos);
        skip_ws(&mut pos);
        let op = word(&mut pos);
        if field.is_empty() || !op.eq_ignore_ascii_case("eq") {
            return Err(syntax(pos));
        }
        skip_ws(&mut pos);
        if chars.get(pos) != Some(&'\'') {
            return Err(syntax(pos));
        }
        let literal_start = pos;
        pos += 1;
        let mut value = String::new();
        loop {
            match (chars.get(pos), chars.get(pos + 1)) {
                (None, _) => {
                    return Err(format!(
                        "There is an unterminated string literal at position {literal_start} in '{filter}'."
                    ))
                }
                (Some('\''), Some('\'')) => {
                    value.push('\'');
                    pos += 2;
                }
                (Some('\''), _) => {
                    pos += 1;
                    break;
                }
                (Some(c), _) => {
                    value.push(*c);
                    pos += 1;
                }
            }
        }
        clauses.push((field, value));
        skip_ws(&mut pos);
        if pos >= chars.len() {
            return Ok(clauses);
        }
        if !word(&mut pos).eq_ignore_ascii_case("or") {
            return Err(syntax(pos));
        }
    }
}

/// Applies a parsed filter over `candidates`; `Err` names an unsupported property.
pub(crate) fn filter_people(
    candidates: &[usize],
    clauses: &[(String, String)],
    value_of: impl Fn(usize, &str) -> Option<String>,
) -> Result<Vec<usize>, String> {
    let mut kept = Vec::new();
    for &i in candidates {
        let mut hit = false;
        for (field, literal) in clauses {
            let actual = value_of(i, field).ok_or_else(|| field.clone())?;
            hit |= actual.eq_ignore_ascii_case(literal);
        }
        if hit {
            kept.push(i);
        }
    }
    Ok(kept)
}

#[cfg(test)]
mod tests {
    use super::parse_filter;

    #[test]
    fn filter_literals_undouble_quotes_and_join_with_or() {
        let clauses = parse_filter(
            "userPrincipalName eq 'o''neil@example.com' or mail eq 'o''neil@example.com'",
        );
        assert_eq!(
            clauses,
            Ok(vec![
                (
                    "userPrincipalName".to_string(),
                    "o'neil@example.com".to_string()
                ),
                ("mail".to_string(), "o'neil@example.com".to_string()),
            ])
        );
    }

    #[test]
    fn filter_with_a_lone_quote_or_a_cut_literal_is_rejected() {
        assert!(parse_filter("userPrincipalName eq 'o'neil@example.com'").is_err());
        assert!(parse_filter("userPrincipalName eq 'dave_partner.com").is_err());
        assert!(parse_filter("startswith(mail,'a')").is_err());
    }
}
