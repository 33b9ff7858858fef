//! Scoped admin keys: which configured key a bearer is (compared in constant time,
//! as digests, against every key), and the rights each role has. Handlers name the
//! right they need in their extractor (`identity::Admin<Read>`); the table of which
//! role holds which right is `Right::allows`, here and nowhere else.

use crate::config::{AdminRole, AdminSettings};
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// The key a caller presented: its configured name (what the audit log shows) and role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminKey {
    pub name: String,
    pub role: AdminRole,
}

/// Every configured admin key, as digests.
pub struct AdminKeys {
    keys: Vec<([u8; 32], Arc<AdminKey>)>,
}

impl AdminKeys {
    /// `admin.api_key` (when set) as the operator `default`, then `admin.keys`.
    pub fn from_settings(admin: &AdminSettings) -> AdminKeys {
        let default = (!admin.api_key.is_empty()).then(|| {
            (
                key_digest(admin.api_key.as_bytes()),
                Arc::new(AdminKey {
                    name: "default".into(),
                    role: AdminRole::Operator,
                }),
            )
        });
        let scoped = admin.keys.iter().map(|k| {
            (
                key_digest(k.key.as_bytes()),
                Arc::new(AdminKey {
                    name: k.name.clone(),
                    role: k.role,
                }),
            )
        });
        AdminKeys {
            keys: default.into_iter().chain(scoped).collect(),
        }
    }

    /// The key `presented` is, if any. Every key is compared (no early exit), each in
    /// constant time, so the time taken says nothing about which key came close.
    pub fn identify(&self, presented: &str) -> Option<Arc<AdminKey>> {
        let mut found = None;
        for (digest, key) in &self.keys {
            if key_matches(presented.as_bytes(), digest) && found.is_none() {
                found = Some(Arc::clone(key));
            }
        }
        found
    }

    /// The key named `name` (an event-stream ticket names its key).
    pub fn named(&self, name: &str) -> Option<Arc<AdminKey>> {
        self.keys
            .iter()
            .find(|(_, k)| k.name == name)
            .map(|(_, k)| Arc::clone(k))
    }
}

/// A right an admin endpoint needs.
pub trait Right: 'static {
    /// For the `403` message: what the key may not do.
    const WHAT: &'static str;
    fn allows(role: AdminRole) -> bool;
}

/// Create and steer activities, read the audit log: `operator` only.
pub struct Operate;
/// Every admin `GET` and the event stream: `operator`, `viewer`.
pub struct Read;
/// Confirm payment and cancel orders: `operator`, `shop`.
pub struct Settle;
/// Read orders: every role.
pub struct ReadOrders;

impl Right for Operate {
    const WHAT: &'static str = "change activities or read the audit log (operator keys only)";
    fn allows(role: AdminRole) -> bool {
        role == AdminRole::Operator
    }
}

impl Right for Read {
    const WHAT: &'static str = "read activities or the event stream (operator and viewer keys)";
    fn allows(role: AdminRole) -> bool {
        matches!(role, AdminRole::Operator | AdminRole::Viewer)
    }
}

impl Right for Settle {
    const WHAT: &'static str = "confirm payment or cancel orders (operator and shop keys)";
    fn allows(role: AdminRole) -> bool {
        matches!(role, AdminRole::Operator | AdminRole::Shop)
    }
}

impl Right for ReadOrders {
    const WHAT: &'static str = "read orders";
    fn allows(_: AdminRole) -> bool {
        true
    }
}

/// SHA-256 of a secret: secrets are compared as digests, in constant time, whatever
/// the length of what was presented.
pub fn key_digest(key: &[u8]) -> [u8; 32] {
    Sha256::digest(key).into()
}

/// True if `presented` is the secret whose digest is `digest`.
pub fn key_matches(presented: &[u8], digest: &[u8; 32]) -> bool {
    use subtle::ConstantTimeEq;
    key_digest(presented).ct_eq(digest).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AdminKeySettings;

    fn keys() -> AdminKeys {
        AdminKeys::from_settings(&AdminSettings {
            api_key: "root-key".into(),
            keys: vec![
                AdminKeySettings {
                    name: "shop-backend".into(),
                    key: "shop-key".into(),
                    role: AdminRole::Shop,
                },
                AdminKeySettings {
                    name: "ops".into(),
                    key: "view-key".into(),
                    role: AdminRole::Viewer,
                },
            ],
        })
    }

    #[test]
    fn the_v1_key_is_the_operator_named_default() {
        let k = keys().identify("root-key").expect("known");
        assert_eq!((k.name.as_str(), k.role), ("default", AdminRole::Operator));
        assert_eq!(
            keys().identify("shop-key").map(|k| k.role),
            Some(AdminRole::Shop)
        );
        assert!(keys().identify("root-ke").is_none());
        assert!(keys().identify("").is_none());
    }

    #[test]
    fn without_api_key_only_the_scoped_keys_exist() {
        let k = AdminKeys::from_settings(&AdminSettings {
            api_key: String::new(),
            keys: vec![],
        });
        assert!(k.identify("").is_none());
    }

    #[test]
    fn each_role_holds_exactly_its_rights() {
        use AdminRole::*;
        let table = [
            (Operator, [true, true, true, true]),
            (Viewer, [false, true, false, true]),
            (Shop, [false, false, true, true]),
        ];
        for (role, want) in table {
            let got = [
                Operate::allows(role),
                Read::allows(role),
                Settle::allows(role),
                ReadOrders::allows(role),
            ];
            assert_eq!(got, want, "{role:?}");
        }
    }
}
