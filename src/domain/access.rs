//! Who may do what. Roles come from the token; makerspace scope from the token's claims
//! (and, as members arrive, from our own membership table).
//!
//! Every check answers one of three ways. `NotFound` rather than `Forbidden` for a space the
//! caller has nothing to do with, so that ids of other makerspaces cannot be probed.

use std::collections::{BTreeMap, BTreeSet};

/// Roles from the product documents. `user` and `maker` are the documents' other names for a
/// member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    SuperAdmin,
    /// Reads across every makerspace, changes nothing.
    Admin,
    /// Full rights in its own makerspaces.
    MakerspaceAdmin,
    ServiceProvider,
    Member,
    StoreCustomer,
    /// Another service calling makrcave (the MakrX Store): only the service endpoints (service
    /// orders, file uploads, providers); everywhere else it is refused as a store customer is.
    Service,
}

impl Role {
    pub fn parse(s: &str) -> Option<Role> {
        match s.to_ascii_lowercase().replace('-', "_").as_str() {
            "super_admin" | "superadmin" => Some(Self::SuperAdmin),
            "admin" => Some(Self::Admin),
            "makerspace_admin" => Some(Self::MakerspaceAdmin),
            "service_provider" => Some(Self::ServiceProvider),
            "member" | "user" | "maker" => Some(Self::Member),
            "store_customer" => Some(Self::StoreCustomer),
            "service" => Some(Self::Service),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::SuperAdmin => "super_admin",
            Self::Admin => "admin",
            Self::MakerspaceAdmin => "makerspace_admin",
            Self::ServiceProvider => "service_provider",
            Self::Member => "member",
            Self::StoreCustomer => "store_customer",
            Self::Service => "service",
        }
    }
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Principal {
    pub user_id: String,
    /// Roles from the token, platform-wide.
    pub roles: BTreeSet<Role>,
    /// Makerspaces the token says the caller belongs to (its roles apply in them).
    pub makerspaces: BTreeSet<String>,
    /// Active memberships from our own database: the role in each makerspace. Where there is
    /// one, it is the caller's role in that space, whatever the token says.
    pub memberships: BTreeMap<String, Role>,
    /// When the caller's token stops being valid: a long-lived connection (a WebSocket) ends
    /// then, as a request would be refused.
    pub expires_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// The answer to "may this caller do this?".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// The caller may see the thing but not do this to it.
    Forbidden,
    /// The caller may not even know the thing exists.
    NotFound,
}

impl Principal {
    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    /// Sees everything, in every makerspace.
    fn reads_everything(&self) -> bool {
        self.has(Role::SuperAdmin) || self.has(Role::Admin)
    }

    /// Reads every makerspace by a platform role, whatever the caller's memberships say.
    pub fn reads_every_space(&self) -> bool {
        self.reads_everything()
    }

    /// Whether the caller holds `role` inside a makerspace: by its membership there, or else
    /// by the token (a token role applies in the token's makerspaces).
    fn has_in_space(&self, makerspace_id: &str, role: Role) -> bool {
        match self.memberships.get(makerspace_id) {
            Some(member_role) => *member_role == role,
            None => self.makerspaces.contains(makerspace_id) && self.has(role),
        }
    }

    /// Whether the caller has any role that reads inside this makerspace.
    fn reads_space(&self, makerspace_id: &str) -> bool {
        [Role::MakerspaceAdmin, Role::ServiceProvider, Role::Member]
            .into_iter()
            .any(|r| self.has_in_space(makerspace_id, r))
    }

    /// Read a makerspace and what is in it (equipment, live state).
    pub fn can_read_space(&self, makerspace_id: &str) -> Decision {
        if self.reads_everything() || self.reads_space(makerspace_id) {
            Decision::Allow
        } else {
            Decision::NotFound
        }
    }

    /// Change a makerspace's settings and manage its equipment.
    pub fn can_manage_space(&self, makerspace_id: &str) -> Decision {
        if self.has(Role::SuperAdmin) || self.has_in_space(makerspace_id, Role::MakerspaceAdmin) {
            return Decision::Allow;
        }
        match self.can_read_space(makerspace_id) {
            Decision::Allow => Decision::Forbidden,
            other => other,
        }
    }

    /// Create makerspaces, delete them: the platform's own administrators only.
    pub fn can_administer_platform(&self) -> Decision {
        if self.has(Role::SuperAdmin) {
            Decision::Allow
        } else {
            Decision::Forbidden
        }
    }

    /// Read a makerspace's members, plans and invitations: platform admins, and the space's
    /// makerspace_admins. Members and service providers have no member management.
    pub fn can_read_members(&self, makerspace_id: &str) -> Decision {
        if self.reads_everything() {
            return Decision::Allow;
        }
        self.can_manage_members(makerspace_id)
    }

    /// Add, change, suspend and remove members; manage plans, invitations and cards.
    pub fn can_manage_members(&self, makerspace_id: &str) -> Decision {
        self.can_manage_space(makerspace_id)
    }

    /// Call the service-to-service endpoints (route a service order, upload its file): a
    /// service, and super_admin.
    pub fn can_call_services(&self) -> Decision {
        if self.has(Role::Service) || self.has(Role::SuperAdmin) {
            Decision::Allow
        } else {
            Decision::Forbidden
        }
    }

    /// Read the providers and the service orders: the services, and the platform's admins
    /// (`admin` reads across, as everywhere).
    pub fn can_read_services(&self) -> Decision {
        if self.has(Role::Service) || self.reads_everything() {
            Decision::Allow
        } else {
            Decision::Forbidden
        }
    }

    /// Accept or refuse the service orders offered to a makerspace: its makerspace_admins and
    /// service providers, and super_admin.
    pub fn can_answer_offers(&self, makerspace_id: &str) -> Decision {
        if self.has(Role::SuperAdmin)
            || self.has_in_space(makerspace_id, Role::MakerspaceAdmin)
            || self.has_in_space(makerspace_id, Role::ServiceProvider)
        {
            return Decision::Allow;
        }
        match self.can_read_space(makerspace_id) {
            Decision::Allow => Decision::Forbidden,
            other => other,
        }
    }

    /// See the service orders offered to a makerspace: those who answer them, and the
    /// platform's admins.
    pub fn can_read_offers(&self, makerspace_id: &str) -> Decision {
        if self.reads_everything() {
            return Decision::Allow;
        }
        self.can_answer_offers(makerspace_id)
    }

    /// Whether listings should include this makerspace.
    pub fn lists_space(&self, makerspace_id: &str) -> bool {
        self.can_read_space(makerspace_id) == Decision::Allow
    }

    /// Whether the caller sees every makerspace (no filter needed on listings).
    pub fn lists_all_spaces(&self) -> bool {
        self.reads_everything()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who(role: Role, spaces: &[&str]) -> Principal {
        Principal {
            user_id: "u".into(),
            roles: [role].into_iter().collect(),
            makerspaces: spaces.iter().map(|s| s.to_string()).collect(),
            memberships: BTreeMap::new(),
            expires_at: None,
        }
    }

    #[test]
    fn memberships_give_a_role_per_space_and_win_over_the_token() {
        // A plain signed-in user (no token roles) who is admin of A and member of B.
        let p = Principal {
            user_id: "u".into(),
            memberships: [("a".to_string(), Role::MakerspaceAdmin), ("b".to_string(), Role::Member)]
                .into_iter()
                .collect(),
            ..Default::default()
        };
        assert_eq!(p.can_manage_space("a"), Decision::Allow);
        assert_eq!(p.can_read_space("b"), Decision::Allow);
        assert_eq!(p.can_manage_space("b"), Decision::Forbidden);
        assert_eq!(p.can_read_space("c"), Decision::NotFound);
        // The token says makerspace_admin of B; the membership says member: member it is.
        let mut q = who(Role::MakerspaceAdmin, &["b"]);
        q.memberships.insert("b".into(), Role::Member);
        assert_eq!(q.can_manage_space("b"), Decision::Forbidden);
    }

    #[test]
    fn the_matrix() {
        use Decision::*;
        // (role, read A, manage A, read B, manage B, administer)
        let table = [
            (Role::SuperAdmin, Allow, Allow, Allow, Allow, Allow),
            (Role::Admin, Allow, Forbidden, Allow, Forbidden, Forbidden),
            (Role::MakerspaceAdmin, Allow, Allow, NotFound, NotFound, Forbidden),
            (Role::ServiceProvider, Allow, Forbidden, NotFound, NotFound, Forbidden),
            (Role::Member, Allow, Forbidden, NotFound, NotFound, Forbidden),
            (Role::StoreCustomer, NotFound, NotFound, NotFound, NotFound, Forbidden),
            (Role::Service, NotFound, NotFound, NotFound, NotFound, Forbidden),
        ];
        for (role, read_a, manage_a, read_b, manage_b, admin) in table {
            let p = who(role, &["a"]);
            assert_eq!(p.can_read_space("a"), read_a, "{role:?} read a");
            assert_eq!(p.can_manage_space("a"), manage_a, "{role:?} manage a");
            assert_eq!(p.can_read_space("b"), read_b, "{role:?} read b");
            assert_eq!(p.can_manage_space("b"), manage_b, "{role:?} manage b");
            assert_eq!(p.can_administer_platform(), admin, "{role:?} administer");
            assert_eq!(p.can_manage_members("a"), manage_a, "{role:?} manage members of a");
        }
        // Reading members: platform admins and the space's admins only.
        let table = [
            (Role::SuperAdmin, Decision::Allow),
            (Role::Admin, Decision::Allow),
            (Role::MakerspaceAdmin, Decision::Allow),
            (Role::ServiceProvider, Decision::Forbidden),
            (Role::Member, Decision::Forbidden),
            (Role::StoreCustomer, Decision::NotFound),
            (Role::Service, Decision::NotFound),
        ];
        for (role, read_members) in table {
            assert_eq!(who(role, &["a"]).can_read_members("a"), read_members, "{role:?} read members");
        }
    }

    #[test]
    fn the_service_endpoints() {
        use Decision::*;
        // (role, call services, read services, answer offers of A, answer offers of B, read offers of A)
        let table = [
            (Role::SuperAdmin, Allow, Allow, Allow, Allow, Allow),
            (Role::Admin, Forbidden, Allow, Forbidden, Forbidden, Allow),
            (Role::MakerspaceAdmin, Forbidden, Forbidden, Allow, NotFound, Allow),
            (Role::ServiceProvider, Forbidden, Forbidden, Allow, NotFound, Allow),
            (Role::Member, Forbidden, Forbidden, Forbidden, NotFound, Forbidden),
            (Role::StoreCustomer, Forbidden, Forbidden, NotFound, NotFound, NotFound),
            (Role::Service, Allow, Allow, NotFound, NotFound, NotFound),
        ];
        for (role, call, read, answer_a, answer_b, read_offers) in table {
            let p = who(role, &["a"]);
            assert_eq!(p.can_call_services(), call, "{role:?} call services");
            assert_eq!(p.can_read_services(), read, "{role:?} read services");
            assert_eq!(p.can_answer_offers("a"), answer_a, "{role:?} answer offers of a");
            assert_eq!(p.can_answer_offers("b"), answer_b, "{role:?} answer offers of b");
            assert_eq!(p.can_read_offers("a"), read_offers, "{role:?} read offers of a");
        }
        assert_eq!(Role::parse("service"), Some(Role::Service));
    }

    #[test]
    fn document_aliases_are_members() {
        assert_eq!(Role::parse("user"), Some(Role::Member));
        assert_eq!(Role::parse("maker"), Some(Role::Member));
        assert_eq!(Role::parse("Makerspace-Admin"), Some(Role::MakerspaceAdmin));
        assert_eq!(Role::parse("root"), None);
    }
}
