//! Who exists where: the seeded people and the per-provider identifiers derived from them.
//!
//! Every simulator answers from the same [`Directory`], so one person can be present in some
//! providers and absent (or odd) in others — the cases Sever must report honestly. Provider ids
//! (`00u…`, GUIDs, `W…`) are derived from the email by hashing, so they are stable across runs
//! and across directories.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::Provider;

/// One person and how they appear in each provider.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Person {
    pub email: String,
    pub in_providers: Vec<Provider>,
    /// Okta login; defaults to `email`.
    pub okta_login: Option<String>,
    /// Entra user principal name; defaults to `email`.
    pub upn: Option<String>,
    /// Entra `mail` attribute when it differs from `email`.
    pub entra_mail: Option<String>,
    /// An Entra B2B guest (`userType: Guest`).
    pub entra_guest: bool,
    pub slack_primary_owner: bool,
    pub slack_bot: bool,
    /// Holds the provider's admin role (Google `isAdmin`, Slack `is_admin`).
    pub admin: bool,
    /// Entra ID Protection risk level: `none`, `low`, `medium` or `high`.
    pub risk_level: String,
    pub display_name: String,
    /// Names of the groups this person belongs to (Okta, Entra and Google
    /// have groups; see [`Directory::group_key`] for each one's key).
    #[serde(default)]
    pub groups: Vec<String>,
}

impl Default for Person {
    fn default() -> Self {
        Person {
            email: String::new(),
            in_providers: Vec::new(),
            okta_login: None,
            upn: None,
            entra_mail: None,
            entra_guest: false,
            slack_primary_owner: false,
            slack_bot: false,
            admin: false,
            risk_level: "none".to_string(),
            display_name: String::new(),
            groups: Vec::new(),
        }
    }
}

impl Person {
    /// A plain member of the given providers.
    pub fn new(email: &str, display_name: &str, providers: &[Provider]) -> Person {
        Person {
            email: email.to_string(),
            display_name: display_name.to_string(),
            in_providers: providers.to_vec(),
            ..Person::default()
        }
    }

    pub fn is_in(&self, p: Provider) -> bool {
        self.in_providers.contains(&p)
    }

    pub fn login(&self) -> &str {
        self.okta_login.as_deref().unwrap_or(&self.email)
    }

    pub fn upn(&self) -> &str {
        self.upn.as_deref().unwrap_or(&self.email)
    }

    pub fn mail(&self) -> &str {
        self.entra_mail.as_deref().unwrap_or(&self.email)
    }

    /// `(first, last)` from the display name.
    pub(crate) fn names(&self) -> (&str, &str) {
        match self.display_name.split_once(' ') {
            Some((first, last)) => (first, last),
            None => (self.display_name.as_str(), ""),
        }
    }
}

/// The people every simulator answers about.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Directory {
    pub people: Vec<Person>,
    pub domain: String,
    /// `(parent, child)`: group `child` is a member of group `parent`
    /// (Entra and Google list it among the parent's members; Okta groups
    /// do not nest).
    #[serde(default)]
    pub subgroups: Vec<(String, String)>,
}

impl Directory {
    /// The demo directory (domain `example.com`); each person exercises one case.
    pub fn demo() -> Directory {
        use Provider::*;
        let all = &Provider::ALL;
        let people = vec![
            Person {
                groups: vec!["eng".to_string()],
                ..Person::new("alice@example.com", "Alice Anderson", all)
            },
            Person {
                groups: vec!["eng".to_string()],
                ..Person::new("bob@example.com", "Bob Brown", &[Okta, Entra, Google])
            },
            // Slack primary owner (reset refused); revoke in Entra refused by demo_faults.
            Person {
                slack_primary_owner: true,
                admin: true,
                ..Person::new("carol@example.com", "Carol Castillo", all)
            },
            Person {
                upn: Some("dave_partner.com#EXT#@example.onmicrosoft.com".to_string()),
                entra_guest: true,
                ..Person::new("dave@partner.com", "Dave Partner", &[Entra])
            },
            Person::new("o'neil@example.com", "Pat O'Neil", &[Okta, Entra]),
            // Two Entra users answer `... eq 'dup@example.com'`: this one by UPN and mail,
            // the next one by mail only.
            Person::new("dup@example.com", "Dana Dup", &[Okta, Entra]),
            Person {
                entra_mail: Some("dup@example.com".to_string()),
                ..Person::new("dup.contractor@example.com", "Dana Contractor", &[Entra])
            },
            Person {
                admin: true,
                ..Person::new("admin@example.com", "Ada Admin", &[Okta, Google])
            },
            Person {
                slack_bot: true,
                ..Person::new("bot@example.com", "Deploy Bot", &[Slack])
            },
            Person {
                risk_level: "high".to_string(),
                groups: vec!["eng-oncall".to_string()],
                ..Person::new("erin@example.com", "Erin Evans", all)
            },
        ];
        Directory {
            people,
            domain: "example.com".to_string(),
            subgroups: vec![("eng".to_string(), "eng-oncall".to_string())],
        }
    }

    /// `n` people `user00001@domain`… present in all five providers (a few at high or medium
    /// Entra risk; every third in group `eng`, which holds group `eng-oncall`), plus
    /// `admin@domain` in Okta and Google as the delegation subject.
    pub fn generated(n: usize, domain: &str) -> Directory {
        let mut people: Vec<Person> = (1..=n)
            .map(|i| {
                let mut p = Person::new(
                    &format!("user{i:05}@{domain}"),
                    &format!("User {i:05}"),
                    &Provider::ALL,
                );
                p.risk_level = match i % 20 {
                    7 => "high",
                    13 => "medium",
                    _ => "none",
                }
                .to_string();
                if i % 3 == 0 {
                    p.groups.push("eng".to_string());
                }
                p
            })
            .collect();
        people.push(Person {
            admin: true,
            ..Person::new(
                &format!("admin@{domain}"),
                "Ada Admin",
                &[Provider::Okta, Provider::Google],
            )
        });
        Directory {
            people,
            domain: domain.to_string(),
            subgroups: vec![("eng".to_string(), "eng-oncall".to_string())],
        }
    }

    /// The key a provider's API takes for group `name`: Okta's `00g…` id,
    /// Entra's object id, Google's group email (`name@domain`).
    pub fn group_key(&self, p: Provider, name: &str) -> String {
        group_key(p, name, &self.domain)
    }
}

pub(crate) fn group_key(p: Provider, name: &str, domain: &str) -> String {
    let h = |salt: &str| fnv1a(salt, name);
    match p {
        Provider::Okta => format!("00g{}", base62(h("okta-group"), 17)),
        Provider::Entra => guid((u128::from(h("group-hi")) << 64) | u128::from(h("group-lo"))),
        Provider::Google => format!("{}@{domain}", name.to_lowercase()),
        Provider::Slack | Provider::Miro => name.to_string(),
    }
}

fn guid(g: u128) -> String {
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        (g >> 96) as u32,
        (g >> 80) as u16,
        ((g >> 64) as u16) & 0x0fff,
        (((g >> 48) as u16) & 0x3fff) | 0x8000,
        (g as u64) & 0xffff_ffff_ffff
    )
}

/// A person's identifiers in each provider.
#[derive(Clone, Debug)]
pub(crate) struct Ids {
    pub okta: String,
    pub graph: String,
    pub google: String,
    pub slack: String,
    pub miro: String,
}

impl Ids {
    fn derive(email: &str) -> Ids {
        let h = |salt: &str| fnv1a(salt, email);
        let g = (u128::from(h("graph-hi")) << 64) | u128::from(h("graph-lo"));
        Ids {
            okta: format!("00u{}", base62(h("okta"), 17)),
            graph: guid(g),
            google: format!("1{:020}", h("google")),
            slack: format!("W0{}", base36(h("slack"), 8)),
            miro: format!("3458764{:012}", h("miro") % 1_000_000_000_000),
        }
    }
}

/// The directory with lookup tables, built once when the simulators start.
pub(crate) struct Index {
    pub people: Vec<Person>,
    pub ids: Vec<Ids>,
    pub domain: String,
    pub subgroups: Vec<(String, String)>,
    /// Lowercased provider-specific keys (login, UPN, ids, email) → person.
    by_key: HashMap<(Provider, String), usize>,
    /// Lowercased Entra `mail` → people (not unique: see dup@example.com).
    by_mail: HashMap<String, Vec<usize>>,
    /// Any key of any provider → person; resolves fault targets.
    any: HashMap<String, usize>,
}

impl Index {
    pub fn new(dir: Directory) -> Index {
        let ids: Vec<Ids> = dir.people.iter().map(|p| Ids::derive(&p.email)).collect();
        let mut by_key = HashMap::new();
        let mut by_mail: HashMap<String, Vec<usize>> = HashMap::new();
        let mut any = HashMap::new();
        for (i, (p, id)) in dir.people.iter().zip(&ids).enumerate() {
            let keys: [(Provider, &str); 10] = [
                (Provider::Okta, &id.okta),
                (Provider::Okta, p.login()),
                (Provider::Okta, &p.email),
                (Provider::Entra, &id.graph),
                (Provider::Entra, p.upn()),
                (Provider::Google, &id.google),
                (Provider::Google, &p.email),
                (Provider::Slack, &id.slack),
                (Provider::Slack, &p.email),
                (Provider::Miro, &p.email),
            ];
            any.entry(p.email.to_lowercase()).or_insert(i);
            for (prov, key) in keys {
                if p.is_in(prov) {
                    by_key.entry((prov, key.to_lowercase())).or_insert(i);
                    any.entry(key.to_lowercase()).or_insert(i);
                }
            }
            if p.is_in(Provider::Entra) {
                by_mail.entry(p.mail().to_lowercase()).or_default().push(i);
            }
        }
        Index {
            people: dir.people,
            ids,
            domain: dir.domain,
            subgroups: dir.subgroups,
            by_key,
            by_mail,
            any,
        }
    }

    /// The person a provider knows by `key` (case-insensitive).
    pub fn find(&self, p: Provider, key: &str) -> Option<usize> {
        self.by_key.get(&(p, key.to_lowercase())).copied()
    }

    /// Entra users whose `mail` is `mail` (case-insensitive).
    pub fn by_mail(&self, mail: &str) -> &[usize] {
        self.by_mail
            .get(&mail.to_lowercase())
            .map_or(&[], Vec::as_slice)
    }

    /// The person any provider knows by `key`: email, login, UPN or any id.
    pub fn resolve(&self, key: &str) -> Option<usize> {
        self.any.get(&key.to_lowercase()).copied()
    }

    /// The group `p` knows by `key` (case-insensitive), by name.
    pub fn group(&self, p: Provider, key: &str) -> Option<String> {
        self.people
            .iter()
            .flat_map(|person| person.groups.iter())
            .chain(self.subgroups.iter().flat_map(|(a, b)| [a, b]))
            .find(|name| group_key(p, name, &self.domain).eq_ignore_ascii_case(key))
            .cloned()
    }

    /// People of `p` in group `name`, in directory order.
    pub fn group_members(&self, p: Provider, name: &str) -> Vec<usize> {
        (0..self.people.len())
            .filter(|&i| self.people[i].is_in(p) && self.people[i].groups.iter().any(|g| g == name))
            .collect()
    }

    /// Groups directly inside group `name`.
    pub fn subgroups_of(&self, name: &str) -> Vec<&str> {
        self.subgroups
            .iter()
            .filter(|(parent, _)| parent == name)
            .map(|(_, child)| child.as_str())
            .collect()
    }

    /// People present in `p`, in directory order.
    pub fn members(&self, p: Provider) -> Vec<usize> {
        (0..self.people.len())
            .filter(|&i| self.people[i].is_in(p))
            .collect()
    }
}

fn fnv1a(salt: &str, s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in salt.bytes().chain([0]).chain(s.to_lowercase().bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

fn encode(mut n: u64, len: usize, alphabet: &[u8]) -> String {
    let base = alphabet.len() as u64;
    let mut out = vec![b'0'; len];
    for slot in out.iter_mut().rev() {
        *slot = alphabet[(n % base) as usize];
        n /= base;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn base62(n: u64, len: usize) -> String {
    encode(
        n,
        len,
        b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
    )
}

fn base36(n: u64, len: usize) -> String {
    encode(n, len, b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_and_shaped_like_the_real_ones() {
        let a = Ids::derive("alice@example.com");
        let b = Ids::derive("ALICE@example.com");
        assert_eq!(a.okta, b.okta);
        assert_eq!(a.okta.len(), 20);
        assert!(a.okta.starts_with("00u"));
        assert_eq!(a.graph.len(), 36);
        assert_eq!(a.google.len(), 21);
        assert!(a.slack.starts_with('W'));
    }

    #[test]
    fn demo_directory_resolves_every_kind_of_key() {
        let ix = Index::new(Directory::demo());
        let alice = ix.resolve("alice@example.com");
        assert!(alice.is_some());
        let okta_id = ix.ids[alice.unwrap_or_default()].okta.clone();
        assert_eq!(ix.find(Provider::Okta, &okta_id), alice);
        assert_eq!(
            ix.find(
                Provider::Entra,
                "DAVE_partner.com#EXT#@example.onmicrosoft.com"
            ),
            ix.resolve("dave@partner.com")
        );
        assert_eq!(ix.by_mail("dup@example.com").len(), 2);
        assert_eq!(ix.find(Provider::Slack, "bob@example.com"), None);
    }
}
