//! Certificate words: what the verdict says about the server certificate's problems, with
//! their dates and names ("the backend's certificate (CN=api) expired on 2024-01-01, 2 years
//! before this capture"), and what to do about each.

use super::certificate::CertProblem;
use crate::model::CertInfo;
use crate::timefmt::rfc3339_secs;

const DAY: i64 = 86_400;

/// The date of Unix time `secs` (UTC), as `2024-01-01`.
fn date(secs: i64) -> String {
    rfc3339_secs(secs).chars().take(10).collect()
}

/// A span of seconds in the unit a reader wants: days under 60 days, months under 2 years,
/// else years (rounded down).
pub(crate) fn span(secs: i64) -> String {
    let days = secs.max(0) / DAY;
    let (n, unit) = if days < 60 {
        (days, "day")
    } else if days < 730 {
        (days * 12 / 365, "month")
    } else {
        (days / 365, "year")
    };
    match n {
        0 => "less than a day".into(),
        1 => format!("1 {unit}"),
        n => format!("{n} {unit}s"),
    }
}

/// `CN=...` of a distinguished name when it has one, else the whole name.
fn common_name(dn: &str) -> &str {
    dn.split(", ")
        .find(|rdn| rdn.starts_with("CN="))
        .unwrap_or(dn)
}

/// "the backend's certificate (CN=api)".
fn whose(cert: Option<&CertInfo>) -> String {
    match cert
        .map(|c| common_name(&c.subject))
        .filter(|n| !n.is_empty())
    {
        Some(n) => format!("the backend's certificate ({n})"),
        None => "the backend's certificate".into(),
    }
}

/// " (issued by CN=...)", or nothing when the issuer is unknown.
fn issuer(cert: Option<&CertInfo>) -> String {
    match cert
        .map(|c| common_name(&c.issuer))
        .filter(|n| !n.is_empty())
    {
        Some(n) => format!(" (issued by {n})"),
        None => String::new(),
    }
}

/// What one problem is, in a clause.
fn what(p: &CertProblem, cert: Option<&CertInfo>) -> String {
    match p {
        CertProblem::Expired { not_after, capture } => format!(
            "{} expired on {}, {} before this capture",
            whose(cert),
            date(*not_after),
            span(capture - not_after)
        ),
        CertProblem::NotYetValid {
            not_before,
            capture,
        } => format!(
            "{} is valid only from {}, {} after this capture",
            whose(cert),
            date(*not_before),
            span(not_before - capture)
        ),
        CertProblem::NameMismatch { sni, covers } => format!(
            "the certificate covers {}, not the SNI {sni}",
            covers.join(", ")
        ),
        CertProblem::SelfSigned => format!("{} is self-signed", whose(cert)),
        CertProblem::IncompleteChain => format!(
            "the server sent only its leaf certificate{}: unless that issuer is a root the \
             client trusts, the client must already hold the intermediate",
            issuer(cert)
        ),
    }
}

/// What to do about one problem, as a sentence.
fn remedy(p: &CertProblem, cert: Option<&CertInfo>) -> String {
    match p {
        CertProblem::Expired { not_after, .. } => format!(
            "Renew {}, which expired on {}, and install the new one on the backend.",
            whose(cert),
            date(*not_after)
        ),
        CertProblem::NotYetValid { not_before, .. } => format!(
            "Check the clocks of client and backend: {} is valid only from {}.",
            whose(cert),
            date(*not_before)
        ),
        CertProblem::NameMismatch { sni, covers } => format!(
            "Give the backend a certificate that covers {sni}, or have the client ask for a \
             name the certificate covers ({}).",
            covers.join(", ")
        ),
        CertProblem::SelfSigned => format!(
            "Make the client trust {}, or install on the backend a certificate from a CA \
             the client trusts.",
            whose(cert)
        ),
        CertProblem::IncompleteChain => {
            let by = match cert
                .map(|c| common_name(&c.issuer))
                .filter(|n| !n.is_empty())
            {
                Some(n) => format!(" up to {n}"),
                None => String::new(),
            };
            format!(
                "Send the full chain (unless the issuer is itself a root the client \
                 trusts): configure the backend with its leaf and the intermediate \
                 certificates{by}."
            )
        }
    }
}

/// The problems as one clause for an explanation; None when there are none.
pub(crate) fn problems_clause(problems: &[CertProblem], cert: Option<&CertInfo>) -> Option<String> {
    if problems.is_empty() {
        return None;
    }
    let parts: Vec<String> = problems.iter().map(|p| what(p, cert)).collect();
    Some(parts.join("; "))
}

/// What to do about the problems, one sentence each; None when there are none.
pub(crate) fn remedies(problems: &[CertProblem], cert: Option<&CertInfo>) -> Option<String> {
    if problems.is_empty() {
        return None;
    }
    let parts: Vec<String> = problems.iter().map(|p| remedy(p, cert)).collect();
    Some(parts.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert() -> CertInfo {
        CertInfo {
            subject: "O=Lab, CN=api.example.test".into(),
            issuer: "CN=Lab Intermediate".into(),
            ..Default::default()
        }
    }

    #[test]
    fn spans_are_days_months_or_years() {
        assert_eq!(span(0), "less than a day");
        assert_eq!(span(DAY), "1 day");
        assert_eq!(span(59 * DAY + 5), "59 days");
        assert_eq!(span(60 * DAY), "1 month");
        assert_eq!(span(400 * DAY), "13 months");
        assert_eq!(span(729 * DAY), "23 months");
        assert_eq!(span(1056 * DAY), "2 years");
    }

    #[test]
    fn expiry_names_the_certificate_the_date_and_how_long_ago() {
        // 2024-01-01 and 2026-11-22.
        let p = CertProblem::Expired {
            not_after: 1_704_067_200,
            capture: 1_795_305_600,
        };
        let c = cert();
        assert_eq!(
            problems_clause(std::slice::from_ref(&p), Some(&c)).as_deref(),
            Some(
                "the backend's certificate (CN=api.example.test) expired on 2024-01-01, \
                 2 years before this capture"
            )
        );
        assert!(remedies(&[p], Some(&c)).is_some_and(|r| r.contains("2024-01-01")));
    }

    #[test]
    fn a_mismatch_names_what_is_covered_and_the_sni() {
        let p = CertProblem::NameMismatch {
            sni: "api.example.com".into(),
            covers: vec!["*.example.test".into()],
        };
        assert_eq!(
            problems_clause(&[p], None).as_deref(),
            Some("the certificate covers *.example.test, not the SNI api.example.com")
        );
    }

    #[test]
    fn a_lone_leaf_names_its_issuer_and_asks_for_the_chain() {
        let c = cert();
        let p = [CertProblem::IncompleteChain];
        assert_eq!(
            problems_clause(&p, Some(&c)).as_deref(),
            Some(
                "the server sent only its leaf certificate (issued by CN=Lab Intermediate): \
                 unless that issuer is a root the client trusts, the client must already \
                 hold the intermediate"
            )
        );
        assert!(remedies(&p, Some(&c)).is_some_and(
            |r| r.starts_with("Send the full chain") && r.contains("CN=Lab Intermediate")
        ));
    }

    #[test]
    fn several_problems_are_all_named_and_none_is_nothing() {
        let p = [
            CertProblem::NotYetValid {
                not_before: 1_800_000_000 + 3 * DAY,
                capture: 1_800_000_000,
            },
            CertProblem::SelfSigned,
        ];
        let s = problems_clause(&p, Some(&cert())).unwrap_or_default();
        assert!(
            s.contains("valid only from") && s.contains("3 days after"),
            "{s}"
        );
        assert!(s.ends_with("(CN=api.example.test) is self-signed"), "{s}");
        assert!(problems_clause(&[], None).is_none() && remedies(&[], None).is_none());
    }
}
