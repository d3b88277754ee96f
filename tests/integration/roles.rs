//! The role matrix: every endpoint of the OpenAPI document, called by every role, answers
//! what the product documents' matrices say. An endpoint without a rule here fails the test,
//! so a new endpoint cannot ship without deciding who may call it.

use std::collections::BTreeSet;

use makrcave::domain::access::Role;
use reqwest::Method;
use serde_json::{json, Value};

use crate::common::TestApp;

/// Who calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Guest,
    StoreCustomer,
    Member,
    ServiceProvider,
    SpaceAdmin,
    /// A makerspace_admin of another makerspace.
    OtherSpaceAdmin,
    Admin,
    SuperAdmin,
    /// Another service (the MakrX Store), with the `service` role.
    Service,
}

const EVERYONE: [Who; 9] = [
    Who::Guest,
    Who::StoreCustomer,
    Who::Member,
    Who::ServiceProvider,
    Who::SpaceAdmin,
    Who::OtherSpaceAdmin,
    Who::Admin,
    Who::SuperAdmin,
    Who::Service,
];

/// The access rules of the documents.
#[derive(Debug, Clone, Copy)]
enum Rule {
    /// Anyone, signed in or not.
    Public,
    /// Any signed-in person.
    SignedIn,
    /// People of the space, and the platform's admins.
    SpaceRead,
    /// The space's makerspace_admin and super_admin.
    SpaceManage,
    /// Member management, reading: the space's makerspace_admin, admin, super_admin.
    MembersRead,
    /// super_admin only; others who can see the space get 403.
    PlatformOnSpace,
    /// super_admin only, not about one space.
    Platform,
    /// The WebSocket: 401 without a token, else the upgrade is attempted (400 without one).
    WebSocket,
    /// Kiosk endpoints take a device token, never a person's: 401 for everyone here.
    Device,
    /// People who may read the space get past the door, and the request itself then answers
    /// 409 (a lock of a machine that has no session).
    SpaceReadThenConflict,
    /// People who may read the space get past the door; the space's admins then get the
    /// machine's own answer, 409 (the fixture machine is offline, so it takes no job command),
    /// and the others 403 (not their session).
    SpaceManageThenConflict,
    /// Something people of the space do themselves (book a machine, ask for a skill): the
    /// space's members, service providers and makerspace_admins, and super_admin; `admin`
    /// only reads (403).
    SpaceMember,
    /// As `SpaceMember` to get past the door, then the request itself answers 409 (a bed
    /// confirmed clear on a machine that is not waiting for it).
    SpaceMemberThenConflict,
    /// One person's thing (the fixture's job, the member's): its owner, the space's admins
    /// and the platform's read it; another person of the space does not see it (404).
    OwnerRead,
    /// As `OwnerRead`, to change it: the platform's `admin` only reads (403).
    OwnerManage,
    /// The service-to-service calls (route a service order, upload its file): services and
    /// super_admin; every person else 403.
    ServiceCall,
    /// Reading providers and service orders: services, admin and super_admin.
    ServiceRead,
    /// The offers to a space: those who answer them (the space's makerspace_admins and service
    /// providers), admin and super_admin; the space's members 403.
    OfferRead,
    /// Answering an offer: the space's makerspace_admins and service providers and
    /// super_admin get past the door, then 409 (the fixture's job is queued, not offered);
    /// others who see the space 403.
    OfferAnswerThenConflict,
    /// One member's money (the fixture member's wallet, their charge): the space's admins and
    /// the platform's readers read it; another person of the space does not see it (404).
    /// The fixture's member has no login, so no caller here is that member.
    MemberMoneyRead,
    /// As `MemberMoneyRead`, to pay: the platform's `admin` only reads (403).
    MemberMoneyManage,
    /// As `MemberMoneyManage` to get past the door, then the request itself answers 409 (a
    /// checkout in a space with no gateway account).
    MemberMoneyManageThenConflict,
    /// Who reads the space gets past the door, and then finds nothing (the fixture has no
    /// checkout): 404 for every signed-in caller.
    SpaceReadThenNotFound,
    /// A gateway's webhook: no token is looked at (the signature is the proof); the fixture's
    /// space has no gateway account, so 404 for everyone.
    Webhook,
}

impl Rule {
    /// The status class expected: 2 for success, or the exact code.
    fn expect(self, who: Who) -> u16 {
        use Who::*;
        match (self, who) {
            (Rule::Public, _) => 2,
            (Rule::Device, _) => 401,
            (Rule::Webhook, _) => 404,
            (_, Guest) => 401,
            (Rule::SignedIn, _) => 2,
            (Rule::WebSocket, _) => 400,
            (Rule::ServiceCall, Service | SuperAdmin) => 2,
            (Rule::ServiceCall, _) => 403,
            (Rule::ServiceRead, Service | Admin | SuperAdmin) => 2,
            (Rule::ServiceRead, _) => 403,
            (Rule::Platform, SuperAdmin) => 2,
            (Rule::Platform, _) => 403,
            (
                Rule::SpaceReadThenConflict
                | Rule::SpaceManageThenConflict
                | Rule::SpaceMemberThenConflict
                | Rule::OfferAnswerThenConflict
                | Rule::MemberMoneyManageThenConflict,
                SuperAdmin,
            ) => 409,
            (Rule::SpaceReadThenNotFound, SuperAdmin) => 404,
            (_, SuperAdmin) => 2,
            // A service is no person of any makerspace.
            (_, StoreCustomer | OtherSpaceAdmin | Service) => 404,
            (Rule::SpaceReadThenNotFound, _) => 404,
            (Rule::MemberMoneyManageThenConflict, SpaceAdmin) => 409,
            (
                Rule::MemberMoneyRead | Rule::MemberMoneyManage | Rule::MemberMoneyManageThenConflict,
                Member | ServiceProvider,
            ) => 404,
            (Rule::MemberMoneyManage | Rule::MemberMoneyManageThenConflict, Admin) => 403,
            (Rule::MemberMoneyRead | Rule::MemberMoneyManage, _) => 2,
            (Rule::OfferRead, SpaceAdmin | ServiceProvider | Admin) => 2,
            (Rule::OfferRead, _) => 403,
            (Rule::OfferAnswerThenConflict, SpaceAdmin | ServiceProvider) => 409,
            (Rule::OfferAnswerThenConflict, _) => 403,
            (Rule::SpaceRead, _) => 2,
            (Rule::SpaceReadThenConflict, _) => 409,
            (Rule::SpaceManageThenConflict, SpaceAdmin) => 409,
            (Rule::SpaceManageThenConflict, _) => 403,
            (Rule::SpaceManage, SpaceAdmin) => 2,
            (Rule::SpaceManage, _) => 403,
            (Rule::MembersRead, SpaceAdmin | Admin) => 2,
            (Rule::MembersRead, _) => 403,
            (Rule::PlatformOnSpace, _) => 403,
            (Rule::SpaceMember, Member | ServiceProvider | SpaceAdmin) => 2,
            (Rule::SpaceMember, _) => 403,
            (Rule::SpaceMemberThenConflict, Member | ServiceProvider | SpaceAdmin) => 409,
            (Rule::SpaceMemberThenConflict, _) => 403,
            (Rule::OwnerRead | Rule::OwnerManage, ServiceProvider) => 404,
            (Rule::OwnerManage, Admin) => 403,
            (Rule::OwnerRead | Rule::OwnerManage, _) => 2,
        }
    }
}

/// Every endpoint and its rule.
const RULES: &[(&str, &str, Rule)] = &[
    ("POST", "/api/v1/makerspaces", Rule::Platform),
    ("GET", "/api/v1/makerspaces", Rule::SignedIn),
    ("GET", "/api/v1/makerspaces/{makerspace_id}", Rule::SpaceRead),
    ("PUT", "/api/v1/makerspaces/{makerspace_id}", Rule::SpaceManage),
    ("DELETE", "/api/v1/makerspaces/{makerspace_id}", Rule::PlatformOnSpace),
    ("POST", "/api/v1/makerspaces/{makerspace_id}/equipment", Rule::SpaceManage),
    ("GET", "/api/v1/makerspaces/{makerspace_id}/equipment", Rule::SpaceRead),
    ("GET", "/api/v1/makerspaces/{makerspace_id}/equipment/{equipment_id}", Rule::SpaceRead),
    ("PUT", "/api/v1/makerspaces/{makerspace_id}/equipment/{equipment_id}", Rule::SpaceManage),
    ("DELETE", "/api/v1/makerspaces/{makerspace_id}/equipment/{equipment_id}", Rule::SpaceManage),
    ("GET", "/api/v1/makerspaces/{makerspace_id}/equipment/{equipment_id}/state", Rule::SpaceRead),
    // Reading the space is enough to reach it; then the session's owner or an admin locks, and a
    // machine without a session answers 409 (the matrix's fixture machine has none).
    ("POST", "/api/v1/makerspaces/{makerspace_id}/equipment/{equipment_id}/lock", Rule::SpaceReadThenConflict),
    ("POST", "/api/v1/makerspaces/{makerspace_id}/equipment/{equipment_id}/mqtt-credentials", Rule::SpaceManage),
    ("DELETE", "/api/v1/makerspaces/{makerspace_id}/equipment/{equipment_id}/mqtt-credentials", Rule::SpaceManage),
    ("POST", "/api/v1/makerspaces/{makerspace_id}/equipment/{equipment_id}/job/pause", Rule::SpaceManageThenConflict),
    ("POST", "/api/v1/makerspaces/{makerspace_id}/equipment/{equipment_id}/job/resume", Rule::SpaceManageThenConflict),
    ("POST", "/api/v1/makerspaces/{makerspace_id}/equipment/{equipment_id}/job/cancel", Rule::SpaceManageThenConflict),
    ("POST", "/api/v1/makerspaces/{makerspace_id}/members", Rule::SpaceManage),
    ("GET", "/api/v1/makerspaces/{makerspace_id}/members", Rule::MembersRead),
    ("GET", "/api/v1/makerspaces/{makerspace_id}/members/{member_id}", Rule::MembersRead),
    ("PUT", "/api/v1/makerspaces/{makerspace_id}/members/{member_id}", Rule::SpaceManage),
    ("DELETE", "/api/v1/makerspaces/{makerspace_id}/members/{member_id}", Rule::SpaceManage),
    ("POST", "/api/v1/makerspaces/{makerspace_id}/members/{member_id}/suspend", Rule::SpaceManage),
    ("POST", "/api/v1/makerspaces/{makerspace_id}/members/{member_id}/reactivate", Rule::SpaceManage),
    ("GET", "/api/v1/makerspaces/{makerspace_id}/members/{member_id}/activities", Rule::MembersRead),
    ("GET", "/api/v1/makerspaces/{makerspace_id}/members/analytics/statistics", Rule::MembersRead),
    ("POST", "/api/v1/makerspaces/{makerspace_id}/members/bulk-operations", Rule::SpaceManage),
    ("GET", "/api/v1/makerspaces/{makerspace_id}/members/export", Rule::MembersRead),
    ("POST", "/api/v1/makerspaces/{makerspace_id}/members/import", Rule::SpaceManage),
    ("POST", "/api/v1/makerspaces/{makerspace_id}/members/plans", Rule::SpaceManage),
    ("GET", "/api/v1/makerspaces/{makerspace_id}/members/plans", Rule::MembersRead),
    ("GET", "/api/v1/makerspaces/{makerspace_id}/members/plans/{plan_id}", Rule::MembersRead),
    ("PUT", "/api/v1/makerspaces/{makerspace_id}/members/plans/{plan_id}", Rule::SpaceManage),
    ("DELETE", "/api/v1/makerspaces/{makerspace_id}/members/plans/{plan_id}", Rule::SpaceManage),
    ("POST", "/api/v1/makerspaces/{makerspace_id}/members/invites", Rule::SpaceManage),
    ("GET", "/api/v1/makerspaces/{makerspace_id}/members/invites", Rule::MembersRead),
    ("POST", "/api/v1/makerspaces/{makerspace_id}/members/invites/{invite_id}/resend", Rule::SpaceManage),
    ("DELETE", "/api/v1/makerspaces/{makerspace_id}/members/invites/{invite_id}", Rule::SpaceManage),
    ("POST", "/api/v1/makerspaces/{makerspace_id}/members/{member_id}/cards", Rule::SpaceManage),
    ("GET", "/api/v1/makerspaces/{makerspace_id}/members/{member_id}/cards", Rule::MembersRead),
    ("DELETE", "/api/v1/makerspaces/{makerspace_id}/members/{member_id}/cards/{card_id}", Rule::SpaceManage),
    ("POST", "/api/v1/makerspaces/{makerspace_id}/cards/lookup", Rule::MembersRead),
    ("POST", "/api/v1/members/invites/{token}/accept", Rule::SignedIn),
    ("POST", "/api/v1/invites/validate", Rule::Public),
    ("GET", "/api/v1/user/makerspaces", Rule::SignedIn),
    ("GET", "/api/v1/ws", Rule::WebSocket),
    ("POST", "/api/v1/makerspaces/{makerspace_id}/reservations", Rule::SpaceMember),
    ("GET", "/api/v1/makerspaces/{makerspace_id}/reservations", Rule::SpaceRead),
    ("GET", "/api/v1/makerspaces/{makerspace_id}/reservations/{reservation_id}", Rule::SpaceRead),
    // Someone else's booking: only the space's admins act on it.
    ("POST", "/api/v1/makerspaces/{makerspace_id}/reservations/{reservation_id}/cancel", Rule::SpaceManage),
    ("POST", "/api/v1/makerspaces/{makerspace_id}/reservations/{reservation_id}/approve", Rule::SpaceManage),
    ("POST", "/api/v1/makerspaces/{makerspace_id}/reservations/{reservation_id}/reject", Rule::SpaceManage),
    ("POST", "/api/v1/makerspaces/{makerspace_id}/reservations/{reservation_id}/check-in", Rule::SpaceManage),
    ("GET", "/api/v1/makerspaces/{makerspace_id}/equipment/available", Rule::SpaceRead),
    ("POST", "/api/v1/makerspaces/{makerspace_id}/waitlist", Rule::SpaceMember),
    ("GET", "/api/v1/makerspaces/{makerspace_id}/waitlist", Rule::SpaceRead),
    ("DELETE", "/api/v1/makerspaces/{makerspace_id}/waitlist/{entry_id}", Rule::SpaceManage),
    ("POST", "/api/v1/skills", Rule::SpaceManage),
    ("GET", "/api/v1/skills", Rule::SignedIn),
    ("GET", "/api/v1/skills/{skill_id}", Rule::SpaceRead),
    ("PUT", "/api/v1/skills/{skill_id}", Rule::SpaceManage),
    ("POST", "/api/v1/skills/user-skills", Rule::SpaceManage),
    ("GET", "/api/v1/skills/user-skills", Rule::SignedIn),
    ("POST", "/api/v1/skills/user-skills/{user_skill_id}/revoke", Rule::SpaceManage),
    ("POST", "/api/v1/skills/requests", Rule::SpaceMember),
    ("GET", "/api/v1/skills/requests", Rule::SignedIn),
    ("PUT", "/api/v1/skills/requests/{request_id}", Rule::SpaceManage),
    ("GET", "/api/v1/skills/access/equipment", Rule::SignedIn),
    ("GET", "/api/v1/skills/access/equipment/{equipment_id}", Rule::SpaceRead),
    ("GET", "/api/v1/skills/equipment-requirements", Rule::SignedIn),
    ("GET", "/api/v1/skills/audit-logs", Rule::SignedIn),
    ("GET", "/healthz", Rule::Public),
    ("GET", "/metrics", Rule::Public),
    ("POST", "/api/v1/makerspaces/{makerspace_id}/kiosks", Rule::SpaceManage),
    ("GET", "/api/v1/makerspaces/{makerspace_id}/kiosks", Rule::MembersRead),
    ("PUT", "/api/v1/makerspaces/{makerspace_id}/kiosks/{kiosk_id}", Rule::SpaceManage),
    ("DELETE", "/api/v1/makerspaces/{makerspace_id}/kiosks/{kiosk_id}", Rule::SpaceManage),
    ("GET", "/api/v1/makerspaces/{makerspace_id}/kiosk-attempts", Rule::MembersRead),
    ("POST", "/api/v1/kiosk/unlock", Rule::Device),
    ("GET", "/api/v1/kiosk/machines", Rule::Device),
    ("POST", "/api/v1/kiosk/lock", Rule::Device),
    ("POST", "/api/v1/kiosk/clear", Rule::Device),
    ("GET", "/api/v1/kiosk/allowlist", Rule::Device),
    ("GET", "/api/v1/kiosk/jobs/{job_id}/file", Rule::Device),
    ("GET", "/api/v1/makerspaces/{makerspace_id}/allowlist-key", Rule::SpaceManage),
    ("POST", "/api/v1/makerspaces/{makerspace_id}/inventory", Rule::SpaceManage),
    ("GET", "/api/v1/makerspaces/{makerspace_id}/inventory", Rule::SpaceRead),
    ("GET", "/api/v1/makerspaces/{makerspace_id}/inventory/{item_id}", Rule::SpaceRead),
    ("PUT", "/api/v1/makerspaces/{makerspace_id}/inventory/{item_id}", Rule::SpaceManage),
    ("DELETE", "/api/v1/makerspaces/{makerspace_id}/inventory/{item_id}", Rule::SpaceManage),
    ("POST", "/api/v1/makerspaces/{makerspace_id}/inventory/{item_id}/deduct", Rule::SpaceManage),
    ("POST", "/api/v1/makerspaces/{makerspace_id}/inventory/{item_id}/receive", Rule::SpaceManage),
    ("POST", "/api/v1/makerspaces/{makerspace_id}/inventory/{item_id}/adjust", Rule::SpaceManage),
    // Who took what is for the space's admins and the platform's.
    ("GET", "/api/v1/makerspaces/{makerspace_id}/inventory/{item_id}/usage", Rule::MembersRead),
    // That an item is low is no secret from the space's people (the item list shows it).
    ("GET", "/api/v1/makerspaces/{makerspace_id}/inventory/alerts", Rule::SpaceRead),
    // Orders, with suppliers and money, are the admins'.
    ("POST", "/api/v1/makerspaces/{makerspace_id}/purchase-orders", Rule::SpaceManage),
    ("GET", "/api/v1/makerspaces/{makerspace_id}/purchase-orders", Rule::MembersRead),
    ("GET", "/api/v1/makerspaces/{makerspace_id}/purchase-orders/{po_id}", Rule::MembersRead),
    ("POST", "/api/v1/makerspaces/{makerspace_id}/purchase-orders/{po_id}/order", Rule::SpaceManage),
    ("POST", "/api/v1/makerspaces/{makerspace_id}/purchase-orders/{po_id}/cancel", Rule::SpaceManage),
    ("POST", "/api/v1/makerspaces/{makerspace_id}/purchase-orders/{po_id}/receive", Rule::SpaceManage),
    ("POST", "/api/v1/makerspaces/{makerspace_id}/inventory/{item_id}/spools", Rule::SpaceManage),
    ("GET", "/api/v1/makerspaces/{makerspace_id}/inventory/{item_id}/spools", Rule::SpaceRead),
    ("GET", "/api/v1/makerspaces/{makerspace_id}/spools/{spool_id}", Rule::SpaceRead),
    ("POST", "/api/v1/makerspaces/{makerspace_id}/spools/{spool_id}/weigh", Rule::SpaceManage),
    ("POST", "/api/v1/makerspaces/{makerspace_id}/equipment/{equipment_id}/spools", Rule::SpaceManage),
    ("GET", "/api/v1/makerspaces/{makerspace_id}/equipment/{equipment_id}/spools", Rule::SpaceRead),
    ("DELETE", "/api/v1/makerspaces/{makerspace_id}/equipment/{equipment_id}/spools/{spool_id}", Rule::SpaceManage),
    ("POST", "/api/v1/makerspaces/{makerspace_id}/inventory/bulk", Rule::SpaceManage),
    // A file of every item with its suppliers and costs is an administrator's tool, as the
    // member export: members read the same items page by page.
    ("GET", "/api/v1/makerspaces/{makerspace_id}/inventory/export", Rule::MembersRead),
    ("POST", "/api/v1/makerspaces/{makerspace_id}/inventory/import", Rule::SpaceManage),
    ("POST", "/api/v1/bom/sync-inventory", Rule::SpaceManage),
    ("POST", "/api/v1/makerspaces/{makerspace_id}/jobs", Rule::SpaceMember),
    ("GET", "/api/v1/makerspaces/{makerspace_id}/jobs", Rule::SpaceRead),
    ("GET", "/api/v1/makerspaces/{makerspace_id}/jobs/{job_id}", Rule::OwnerRead),
    ("POST", "/api/v1/makerspaces/{makerspace_id}/jobs/{job_id}/cancel", Rule::OwnerManage),
    // Moving a job ahead of others' is the space's admins' call.
    ("POST", "/api/v1/makerspaces/{makerspace_id}/jobs/{job_id}/priority", Rule::SpaceManage),
    ("GET", "/api/v1/makerspaces/{makerspace_id}/jobs/machine-health", Rule::SpaceRead),
    // Any person at the machine confirms its bed (a fact seen there); the fixture's machine
    // is not waiting for it.
    ("POST", "/api/v1/makerspaces/{makerspace_id}/equipment/{equipment_id}/clear", Rule::SpaceMemberThenConflict),
    // Prices are no secret from the space's people (they see them on every quote); its
    // admins set them.
    ("GET", "/api/v1/makerspaces/{makerspace_id}/billing/settings", Rule::SpaceRead),
    ("PUT", "/api/v1/makerspaces/{makerspace_id}/billing/settings", Rule::SpaceManage),
    ("GET", "/api/v1/makerspaces/{makerspace_id}/equipment/{equipment_id}/price", Rule::SpaceRead),
    ("PUT", "/api/v1/makerspaces/{makerspace_id}/equipment/{equipment_id}/price", Rule::SpaceManage),
    // Everyone of the space lists charges; a member sees only their own (tests/integration/billing.rs).
    ("GET", "/api/v1/makerspaces/{makerspace_id}/billing/charges", Rule::SpaceRead),
    ("POST", "/api/v1/makerspaces/{makerspace_id}/billing/charges", Rule::SpaceManage),
    (
        "POST",
        "/api/v1/makerspaces/{makerspace_id}/billing/charges/{charge_id}/pay-from-wallet",
        Rule::MemberMoneyManage,
    ),
    ("GET", "/api/v1/makerspaces/{makerspace_id}/members/{member_id}/wallet", Rule::MemberMoneyRead),
    ("POST", "/api/v1/makerspaces/{makerspace_id}/members/{member_id}/wallet/top-ups", Rule::SpaceManage),
    ("POST", "/api/v1/makerspaces/{makerspace_id}/members/{member_id}/wallet/adjustments", Rule::SpaceManage),
    // Invoices: everyone of the space lists them (a member only their own); one invoice is
    // its member's and the admins'; the space's admins make, change, finalize, settle and
    // correct them; the integrity check is for those who read the space's money.
    ("GET", "/api/v1/makerspaces/{makerspace_id}/billing/invoices", Rule::SpaceRead),
    ("POST", "/api/v1/makerspaces/{makerspace_id}/billing/invoices", Rule::SpaceManage),
    ("GET", "/api/v1/makerspaces/{makerspace_id}/billing/invoices/{invoice_id}", Rule::MemberMoneyRead),
    ("GET", "/api/v1/makerspaces/{makerspace_id}/billing/invoices/{invoice_id}.pdf", Rule::MemberMoneyRead),
    (
        "POST",
        "/api/v1/makerspaces/{makerspace_id}/billing/invoices/{invoice_id}/lines/{charge_id}/remove",
        Rule::SpaceManage,
    ),
    ("POST", "/api/v1/makerspaces/{makerspace_id}/billing/invoices/{invoice_id}/finalize", Rule::SpaceManage),
    ("POST", "/api/v1/makerspaces/{makerspace_id}/billing/invoices/{invoice_id}/payments", Rule::SpaceManage),
    ("POST", "/api/v1/makerspaces/{makerspace_id}/billing/invoices/{invoice_id}/void", Rule::SpaceManage),
    ("POST", "/api/v1/makerspaces/{makerspace_id}/billing/invoices/{invoice_id}/credit-notes", Rule::SpaceManage),
    ("GET", "/api/v1/makerspaces/{makerspace_id}/billing/integrity", Rule::MembersRead),
    ("POST", "/api/v1/makerspaces/{makerspace_id}/billing/runs", Rule::SpaceManage),
    // Payment gateways: accounts for the space's admins; a checkout for the invoice's member or
    // admins (the fixture space has no gateway: 409); webhooks carry a signature, not a token.
    ("GET", "/api/v1/makerspaces/{makerspace_id}/billing/gateways", Rule::SpaceManage),
    ("PUT", "/api/v1/makerspaces/{makerspace_id}/billing/gateways/stripe", Rule::SpaceManage),
    ("DELETE", "/api/v1/makerspaces/{makerspace_id}/billing/gateways/stripe", Rule::SpaceManage),
    ("PUT", "/api/v1/makerspaces/{makerspace_id}/billing/gateways/razorpay", Rule::SpaceManage),
    ("DELETE", "/api/v1/makerspaces/{makerspace_id}/billing/gateways/razorpay", Rule::SpaceManage),
    (
        "POST",
        "/api/v1/makerspaces/{makerspace_id}/billing/invoices/{invoice_id}/checkouts",
        Rule::MemberMoneyManageThenConflict,
    ),
    (
        "POST",
        "/api/v1/makerspaces/{makerspace_id}/billing/checkouts/{checkout_id}/razorpay-payment",
        Rule::SpaceReadThenNotFound,
    ),
    ("POST", "/api/v1/makerspaces/{makerspace_id}/billing/webhooks/stripe", Rule::Webhook),
    ("POST", "/api/v1/makerspaces/{makerspace_id}/billing/webhooks/razorpay", Rule::Webhook),
    // The accounting journal and revenue are the space's books: for those who read its money.
    ("GET", "/api/v1/makerspaces/{makerspace_id}/billing/export", Rule::MembersRead),
    ("GET", "/api/v1/makerspaces/{makerspace_id}/billing/revenue", Rule::MembersRead),
    ("GET", "/api/v1/makerspaces/{makerspace_id}/price-table", Rule::SpaceRead),
    ("PUT", "/api/v1/makerspaces/{makerspace_id}/price-table", Rule::SpaceManage),
    ("POST", "/api/v1/makerspaces/{makerspace_id}/quotes", Rule::SpaceRead),
    // Service orders (the MakrX Store's) and the providers they go to.
    ("POST", "/api/v1/jobs/upload", Rule::ServiceCall),
    ("POST", "/api/v1/jobs/route-service-order", Rule::ServiceCall),
    ("GET", "/api/v1/service-orders/{service_order_id}", Rule::ServiceRead),
    ("GET", "/api/v1/providers/available", Rule::ServiceRead),
    ("GET", "/api/v1/makerspaces/{makerspace_id}/offers", Rule::OfferRead),
    ("POST", "/api/v1/makerspaces/{makerspace_id}/jobs/{job_id}/accept", Rule::OfferAnswerThenConflict),
    ("POST", "/api/v1/makerspaces/{makerspace_id}/jobs/{job_id}/reject", Rule::OfferAnswerThenConflict),
];

/// A makerspace with one of everything, for one call.
struct Fixture {
    space: String,
    equipment: String,
    member: String,
    suspended_member: String,
    plan: String,
    invite: String,
    card: String,
    token: String,
    /// A confirmed booking of `equipment` by someone else ("owner"), starting in a minute.
    reservation: String,
    /// A pending booking of a machine that requires approval.
    pending_reservation: String,
    /// Someone else's waitlist entry for the slot of `reservation`.
    waitlist_entry: String,
    reservation_start: String,
    reservation_end: String,
    /// A skill of the space, without prerequisites.
    skill: String,
    /// That skill, certified for someone else ("holder").
    user_skill: String,
    /// Someone else's ("requester") pending request for it.
    skill_request: String,
    /// A registered kiosk of the space.
    kiosk: String,
    /// An inventory item with stock to deduct (a filament).
    item: String,
    /// A draft purchase order of that item.
    purchase_order: String,
    /// An ordered one, to receive.
    ordered_purchase_order: String,
    /// A spool of `item`, loaded on `equipment` in slot `main`.
    spool: String,
    /// Another spool of `item`, loaded nowhere.
    free_spool: String,
    /// A queued job of the space's member ("member").
    job: String,
    /// The SHA-256 of that job's file.
    file_sha256: String,
    /// A service order of the service ("service"), offered to a provider (every fixture's
    /// space is one).
    service_order: String,
    /// A charge of `member` on the draft `draft_invoice`, whose wallet holds enough to pay it.
    charge: String,
    /// A draft invoice of `member` holding `charge`.
    draft_invoice: String,
    /// A finalized, unpaid invoice of `member` (another charge of 100).
    invoice: String,
}

/// What billing needs: a finalized invoice of `member`, then a charge on a draft invoice,
/// and a top-up that pays the charge. Returns `(charge, draft, finalized)`.
async fn billing_fixture(t: &TestApp, space: &str, member: &str) -> (String, String, String) {
    let root = t.super_admin();
    let post = |path: String, key: &'static str, body: Value| {
        let req = t.http.post(t.url(&path)).bearer_auth(&root).header("Idempotency-Key", key).json(&body);
        async move {
            let res = req.send().await.expect("billing fixture");
            assert_eq!(res.status().as_u16(), 201);
            res.json::<Value>().await.expect("json")
        }
    };
    let charges = format!("/api/v1/makerspaces/{space}/billing/charges");
    let invoices = format!("/api/v1/makerspaces/{space}/billing/invoices");
    let period = json!({"member_id": member, "period_from": "2000-01-01", "period_to": "2100-12-31"});
    let billed = json!({"member_id": member, "kind": "manual", "description": "Billed", "amount_minor": 100, "reason": "fixture"});
    post(charges.clone(), "fixture-billed", billed).await;
    let finalized =
        post(invoices.clone(), "fixture-invoice", period.clone()).await["id"].as_str().expect("id").to_string();
    post(format!("{invoices}/{finalized}/finalize"), "fixture-finalize", json!(null)).await;
    let charge = json!({"member_id": member, "kind": "manual", "description": "Fixture", "amount_minor": 100, "reason": "fixture"});
    let charge = post(charges, "fixture-charge", charge).await;
    let draft = post(invoices, "fixture-draft", period).await["id"].as_str().expect("id").to_string();
    post(
        format!("/api/v1/makerspaces/{space}/members/{member}/wallet/top-ups"),
        "fixture-funds",
        json!({"amount_minor": 1000}),
    )
    .await;
    (charge["id"].as_str().expect("charge id").to_string(), draft, finalized)
}

async fn fixture(t: &TestApp, n: usize) -> Fixture {
    let root = t.super_admin();
    let space = format!("space-{n}");
    t.makerspace(&space).await;
    let provider = json!({"provider": {"enabled": true, "service_types": ["3d_printing"]}});
    let (status, updated) = t.put(&format!("/api/v1/makerspaces/{space}"), &root, json!({"settings": provider})).await;
    assert_eq!(status, 200, "{updated}");
    t.machine(&space, &format!("eq-{n}"), json!({})).await;
    let base = format!("/api/v1/makerspaces/{space}/members");
    let mut members = Vec::new();
    for i in 0..2 {
        let (status, m) = t
            .post(&base, &root, json!({"email": format!("p{i}-{n}@example.org"), "first_name": "P", "last_name": "Q"}))
            .await;
        assert_eq!(status, 201, "{m}");
        members.push(m["id"].as_str().expect("id").to_string());
    }
    // The people the fixture books for, queues and certifies are members of the space.
    for user in ["owner", "waiter", "holder", "grantee"] {
        let (status, m) = t
            .post(
                &base,
                &root,
                json!({"email": format!("{user}-{n}@example.org"), "first_name": user, "last_name": "Q", "user_id": user}),
            )
            .await;
        assert_eq!(status, 201, "{m}");
    }
    let (charge, draft_invoice, invoice) = billing_fixture(t, &space, &members[0]).await;
    let (status, _) = t.post(&format!("{base}/{}/suspend", members[1]), &root, json!({"reason": "fixture"})).await;
    assert_eq!(status, 200);
    let (_, plan) = t
        .post(&format!("{base}/plans"), &root, json!({"name": "Unused", "price": 1, "billing_period": "monthly"}))
        .await;
    let (_, card) = t.post(&format!("{base}/{}/cards", members[0]), &root, json!({"uid": format!("CAFE{n:04}")})).await;
    let (_, invite) = t.post(&format!("{base}/invites"), &root, json!({"email": format!("inv-{n}@example.org")})).await;
    t.machine(&space, &format!("eq-{n}-approval"), json!({"requires_approval": true})).await;
    let reservation_start = (chrono::Utc::now() + chrono::Duration::minutes(1)).to_rfc3339();
    let reservation_end = (chrono::Utc::now() + chrono::Duration::minutes(61)).to_rfc3339();
    let reservations = format!("/api/v1/makerspaces/{space}/reservations");
    let slot = |machine: String, user: &str| json!({"equipment_id": machine, "start": reservation_start, "end": reservation_end, "user_id": user});
    let (status, reservation) = t.post(&reservations, &root, slot(format!("eq-{n}"), "owner")).await;
    assert_eq!(status, 201, "{reservation}");
    let owner = t.token("owner", Role::Member, &[&space]);
    let (status, pending) = t.post(&reservations, &owner, slot(format!("eq-{n}-approval"), "owner")).await;
    assert_eq!((status, pending["status"].as_str()), (201, Some("pending")), "{pending}");
    let (status, entry) =
        t.post(&format!("/api/v1/makerspaces/{space}/waitlist"), &root, slot(format!("eq-{n}"), "waiter")).await;
    assert_eq!(status, 201, "{entry}");
    let skill = format!("skill-{n}");
    let (status, created) = t
        .post(
            "/api/v1/skills",
            &root,
            json!({"id": skill, "name": "Fixture skill", "category": "Safety", "level": "beginner", "makerspace_id": space}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let (status, user_skill) =
        t.post("/api/v1/skills/user-skills", &root, json!({"user_id": "holder", "skill_id": skill})).await;
    assert_eq!(status, 201, "{user_skill}");
    let requester = t.token("requester", Role::Member, &[&space]);
    let (status, skill_request) = t.post("/api/v1/skills/requests", &requester, json!({"skill_id": skill})).await;
    assert_eq!(status, 201, "{skill_request}");
    let (status, kiosk) =
        t.post(&format!("/api/v1/makerspaces/{space}/kiosks"), &root, json!({"name": "Front desk"})).await;
    assert_eq!(status, 201, "{kiosk}");
    let (status, credentials) =
        t.post(&format!("/api/v1/makerspaces/{space}/equipment/eq-{n}/mqtt-credentials"), &root, json!(null)).await;
    assert_eq!(status, 201, "{credentials}");
    let (status, item) = t
        .post(
            &format!("/api/v1/makerspaces/{space}/inventory"),
            &root,
            json!({"name": "PLA black", "category": "filament", "unit": "g", "current_stock": 1000}),
        )
        .await;
    assert_eq!(status, 201, "{item}");
    let orders = format!("/api/v1/makerspaces/{space}/purchase-orders");
    let mut purchase_orders = Vec::new();
    for _ in 0..2 {
        let (status, order) = t.post(&orders, &root, json!({"lines": [{"item_id": item["id"], "quantity": 5}]})).await;
        assert_eq!(status, 201, "{order}");
        purchase_orders.push(order["id"].as_str().expect("purchase order id").to_string());
    }
    let (status, ordered) = t.post(&format!("{orders}/{}/order", purchase_orders[1]), &root, json!(null)).await;
    assert_eq!(status, 200, "{ordered}");
    let item = item["id"].as_str().expect("item id").to_string();
    let mut spools = Vec::new();
    for _ in 0..2 {
        let (status, spool) = t
            .post(
                &format!("/api/v1/makerspaces/{space}/inventory/{item}/spools"),
                &root,
                json!({"net_g": 1000, "tare_g": 200}),
            )
            .await;
        assert_eq!(status, 201, "{spool}");
        spools.push(spool["id"].as_str().expect("spool id").to_string());
    }
    let (status, loaded) = t
        .post(
            &format!("/api/v1/makerspaces/{space}/equipment/eq-{n}/spools"),
            &root,
            json!({"spool_id": spools[0], "slot": "main"}),
        )
        .await;
    assert_eq!(status, 201, "{loaded}");
    let member = t.token("member", Role::Member, &[&space]);
    let (status, submitted) =
        crate::job_queue::submit(t, &member, &space, "part.gcode", &crate::job_queue::sliced_gcode("1"), None).await;
    assert_eq!(status, 201, "{submitted}");
    let file_sha256 = submitted["file_sha256"].as_str().expect("file sha256").to_string();
    let service = t.token("service", Role::Service, &[]);
    let order = json!({"service_order_id": format!("so-fixture-{n}"), "file_sha256": file_sha256, "service_type": "3d_printing"});
    let (status, routed) = t.post("/api/v1/jobs/route-service-order", &service, order).await;
    assert_eq!(status, 201, "{routed}");
    Fixture {
        charge,
        draft_invoice,
        invoice,
        job: submitted["jobs"][0]["id"].as_str().expect("job id").to_string(),
        file_sha256,
        service_order: routed["service_order_id"].as_str().expect("service order id").to_string(),
        item,
        spool: spools[0].clone(),
        free_spool: spools[1].clone(),
        purchase_order: purchase_orders[0].clone(),
        ordered_purchase_order: purchase_orders[1].clone(),
        equipment: format!("eq-{n}"),
        member: members[0].clone(),
        suspended_member: members[1].clone(),
        plan: plan["id"].as_str().expect("plan id").to_string(),
        invite: invite["id"].as_str().expect("invite id").to_string(),
        card: card["id"].as_str().expect("card id").to_string(),
        token: crate::common::latest_invite_token(t),
        space,
        reservation: reservation["id"].as_str().expect("reservation id").to_string(),
        pending_reservation: pending["id"].as_str().expect("reservation id").to_string(),
        waitlist_entry: entry["id"].as_str().expect("waitlist entry id").to_string(),
        reservation_start,
        reservation_end,
        user_skill: user_skill["id"].as_str().expect("user skill id").to_string(),
        skill_request: skill_request["id"].as_str().expect("skill request id").to_string(),
        kiosk: kiosk["id"].as_str().expect("kiosk id").to_string(),
        skill,
    }
}

fn token(t: &TestApp, who: Who, space: &str) -> Option<String> {
    let (role, spaces): (Role, Vec<&str>) = match who {
        Who::Guest => return None,
        Who::StoreCustomer => (Role::StoreCustomer, vec![]),
        Who::Member => (Role::Member, vec![space]),
        Who::ServiceProvider => (Role::ServiceProvider, vec![space]),
        Who::SpaceAdmin => (Role::MakerspaceAdmin, vec![space]),
        Who::OtherSpaceAdmin => (Role::MakerspaceAdmin, vec!["elsewhere"]),
        Who::Admin => (Role::Admin, vec![]),
        Who::SuperAdmin => (Role::SuperAdmin, vec![]),
        Who::Service => (Role::Service, vec![]),
    };
    Some(t.token(&format!("{who:?}").to_lowercase(), role, &spaces))
}

/// A body that the endpoint accepts, so that an allowed call really succeeds.
fn body(method: &str, path: &str, f: &Fixture, n: usize) -> Option<Value> {
    let unique = format!("{n}-{}", uuid::Uuid::new_v4().simple());
    Some(match (method, path) {
        ("POST", "/api/v1/makerspaces") => json!({"name": "New space"}),
        ("PUT", "/api/v1/makerspaces/{makerspace_id}") => json!({"description": "changed"}),
        ("POST", "/api/v1/makerspaces/{makerspace_id}/equipment") => json!({"name": "Saw", "type": "tool"}),
        ("PUT", "/api/v1/makerspaces/{makerspace_id}/equipment/{equipment_id}") => json!({"name": "Saw 2"}),
        ("POST", "/api/v1/makerspaces/{makerspace_id}/members") => {
            json!({"email": format!("{unique}@example.org"), "first_name": "N", "last_name": "M"})
        }
        ("PUT", "/api/v1/makerspaces/{makerspace_id}/members/{member_id}") => json!({"notes": "changed"}),
        ("POST", "/api/v1/makerspaces/{makerspace_id}/members/{member_id}/suspend") => json!({"reason": "test"}),
        ("POST", "/api/v1/makerspaces/{makerspace_id}/members/bulk-operations") => {
            json!({"operation": "change_plan", "member_ids": [f.member], "plan_id": null})
        }
        ("POST", "/api/v1/makerspaces/{makerspace_id}/members/plans") => {
            json!({"name": format!("Plan {unique}"), "price": 3, "billing_period": "weekly"})
        }
        ("PUT", "/api/v1/makerspaces/{makerspace_id}/members/plans/{plan_id}") => json!({"price": 4}),
        ("POST", "/api/v1/makerspaces/{makerspace_id}/members/invites") => {
            json!({"email": format!("{unique}@example.org")})
        }
        ("POST", "/api/v1/makerspaces/{makerspace_id}/members/{member_id}/cards") => {
            json!({"uid": format!("{:X}", uuid::Uuid::new_v4().as_u128() >> 64)})
        }
        ("POST", "/api/v1/makerspaces/{makerspace_id}/cards/lookup") => json!({"uid": "DEADBEEF"}),
        ("POST", "/api/v1/invites/validate") => json!({"invite_token": f.token}),
        ("POST", "/api/v1/makerspaces/{makerspace_id}/kiosks") => json!({"name": "Laser kiosk"}),
        ("PUT", "/api/v1/makerspaces/{makerspace_id}/kiosks/{kiosk_id}") => json!({"any_card_locks": true}),
        ("POST", "/api/v1/kiosk/unlock") => json!({"equipment_id": f.equipment, "card_uid": "CAFE0000"}),
        ("POST", "/api/v1/kiosk/lock") => json!({"equipment_id": f.equipment}),
        ("POST", "/api/v1/kiosk/clear") => json!({"equipment_id": f.equipment, "card_uid": "CAFE0000"}),
        ("POST", "/api/v1/makerspaces/{makerspace_id}/reservations") => {
            let start = chrono::Utc::now() + chrono::Duration::hours(2);
            let end = start + chrono::Duration::hours(1);
            json!({"equipment_id": f.equipment, "start": start.to_rfc3339(), "end": end.to_rfc3339()})
        }
        ("POST", "/api/v1/makerspaces/{makerspace_id}/waitlist") => {
            json!({"equipment_id": f.equipment, "start": f.reservation_start, "end": f.reservation_end})
        }
        ("POST", "/api/v1/skills") => {
            json!({"name": format!("Skill {unique}"), "category": "C", "level": "beginner", "makerspace_id": f.space})
        }
        ("PUT", "/api/v1/skills/{skill_id}") => json!({"description": "changed"}),
        ("POST", "/api/v1/skills/user-skills") => json!({"user_id": "grantee", "skill_id": f.skill}),
        ("POST", "/api/v1/skills/requests") => json!({"skill_id": f.skill}),
        ("PUT", "/api/v1/skills/requests/{request_id}") => json!({"status": "approved"}),
        ("POST", "/api/v1/makerspaces/{makerspace_id}/inventory") => {
            json!({"name": format!("Plywood {unique}"), "category": "sheet", "unit": "sheet"})
        }
        ("PUT", "/api/v1/makerspaces/{makerspace_id}/inventory/{item_id}") => json!({"location": "Shelf B"}),
        ("POST", "/api/v1/makerspaces/{makerspace_id}/inventory/{item_id}/deduct") => json!({"quantity": 12.5}),
        ("POST", "/api/v1/makerspaces/{makerspace_id}/inventory/{item_id}/receive") => json!({"quantity": 1000}),
        ("POST", "/api/v1/makerspaces/{makerspace_id}/inventory/{item_id}/adjust") => json!({"counted": 990}),
        ("POST", "/api/v1/makerspaces/{makerspace_id}/purchase-orders") => {
            json!({"lines": [{"item_id": f.item, "quantity": 10}]})
        }
        ("POST", "/api/v1/makerspaces/{makerspace_id}/purchase-orders/{po_id}/receive") => {
            json!({"idempotency_key": unique})
        }
        ("POST", "/api/v1/makerspaces/{makerspace_id}/inventory/{item_id}/spools") => {
            json!({"net_g": 1000, "tare_g": 200, "lot": "L1"})
        }
        ("POST", "/api/v1/makerspaces/{makerspace_id}/spools/{spool_id}/weigh") => json!({"gross_g": 900}),
        ("POST", "/api/v1/makerspaces/{makerspace_id}/equipment/{equipment_id}/spools") => {
            json!({"spool_id": f.free_spool, "slot": "external"})
        }
        ("POST", "/api/v1/makerspaces/{makerspace_id}/inventory/bulk") => {
            json!({"operation": "issue", "items": [{"item_id": f.item, "quantity": 1}]})
        }
        ("POST", "/api/v1/bom/sync-inventory") => {
            json!({"makerspace_id": f.space, "product_codes": ["FIL-PLA-BLK"], "quantities": [250]})
        }
        ("PUT", "/api/v1/makerspaces/{makerspace_id}/price-table") => json!({
            "materials": [{"material": "PLA", "price_per_gram": 0.04, "density_g_cm3": 1.24}],
            "machines": {"3d_printer": {"rate_per_hour": 2, "fill_fraction": 0.3, "deposition_cm3_per_hour": 10}},
            "setup_fee": 1,
            "qualities": {"draft": 0.8, "standard": 1, "fine": 1.5}
        }),
        ("POST", "/api/v1/makerspaces/{makerspace_id}/jobs/{job_id}/priority") => json!({"priority": 5}),
        ("PUT", "/api/v1/makerspaces/{makerspace_id}/billing/settings") => json!({"currency": "EUR", "tax_rates": [],
            "prepaid": false, "prepaid_minimum_minor": 0, "job_charge_policy": "quote"}),
        ("PUT", "/api/v1/makerspaces/{makerspace_id}/equipment/{equipment_id}/price") => json!({"rate_per_hour": 3}),
        ("POST", "/api/v1/makerspaces/{makerspace_id}/billing/charges") => json!({"member_id": f.member,
            "kind": "discount", "description": "Goodwill", "amount_minor": 50, "reason": "late machine"}),
        ("POST", "/api/v1/makerspaces/{makerspace_id}/members/{member_id}/wallet/top-ups") => {
            json!({"amount_minor": 500})
        }
        ("POST", "/api/v1/makerspaces/{makerspace_id}/members/{member_id}/wallet/adjustments") => {
            json!({"amount_minor": 100, "reason": "goodwill"})
        }
        ("POST", "/api/v1/makerspaces/{makerspace_id}/billing/invoices") => {
            json!({"member_id": f.member, "period_from": "2000-01-01", "period_to": "2100-12-31"})
        }
        ("POST", "/api/v1/makerspaces/{makerspace_id}/billing/invoices/{invoice_id}/payments") => {
            json!({"method": "cash", "amount_minor": 1, "reference": "roles"})
        }
        ("POST", "/api/v1/makerspaces/{makerspace_id}/billing/invoices/{invoice_id}/void") => {
            json!({"reason": "roles"})
        }
        ("POST", "/api/v1/makerspaces/{makerspace_id}/billing/invoices/{invoice_id}/credit-notes") => {
            json!({"lines": null, "refund_to": "wallet", "reason": "roles"})
        }
        ("PUT", "/api/v1/makerspaces/{makerspace_id}/billing/gateways/stripe") => {
            json!({"secret_key": "sk_test_roles", "webhook_secret": "whsec_roles"})
        }
        ("PUT", "/api/v1/makerspaces/{makerspace_id}/billing/gateways/razorpay") => {
            json!({"key_id": "rzp_test_roles", "key_secret": "roles", "webhook_secret": "roles"})
        }
        ("POST", "/api/v1/makerspaces/{makerspace_id}/billing/invoices/{invoice_id}/checkouts") => {
            json!({"gateway": "stripe"})
        }
        ("POST", "/api/v1/makerspaces/{makerspace_id}/billing/checkouts/{checkout_id}/razorpay-payment") => {
            json!({"razorpay_payment_id": "pay_roles", "razorpay_signature": "00"})
        }
        ("POST", "/api/v1/makerspaces/{makerspace_id}/billing/runs") => json!({"month": "2020-01"}),
        ("POST", "/api/v1/makerspaces/{makerspace_id}/billing/webhooks/stripe") => json!({"id": "evt_roles"}),
        ("POST", "/api/v1/makerspaces/{makerspace_id}/billing/webhooks/razorpay") => json!({"event": "roles"}),
        ("POST", "/api/v1/makerspaces/{makerspace_id}/quotes") => {
            json!({"equipment_type": "3d_printer", "volume_cm3": 12.5})
        }
        ("POST", "/api/v1/jobs/route-service-order") => {
            json!({"service_order_id": format!("so-{unique}"), "file_sha256": f.file_sha256, "service_type": "3d_printing"})
        }
        _ => return None,
    })
}

fn concrete(path: &str, method: &str, f: &Fixture) -> String {
    let member = if path.ends_with("/reactivate") { &f.suspended_member } else { &f.member };
    let reservation =
        if path.ends_with("/approve") || path.ends_with("/reject") { &f.pending_reservation } else { &f.reservation };
    let purchase_order = if path.ends_with("/receive") { &f.ordered_purchase_order } else { &f.purchase_order };
    let invoice = if path.ends_with("/remove") || path.ends_with("/finalize") { &f.draft_invoice } else { &f.invoice };
    let _ = method;
    path.replace("{makerspace_id}", &f.space)
        .replace("{equipment_id}", &f.equipment)
        .replace("{member_id}", member)
        .replace("{plan_id}", &f.plan)
        .replace("{invite_id}", &f.invite)
        .replace("{card_id}", &f.card)
        .replace("{token}", &f.token)
        .replace("{skill_id}", &f.skill)
        .replace("{user_skill_id}", &f.user_skill)
        .replace("{request_id}", &f.skill_request)
        .replace("{reservation_id}", reservation)
        .replace("{entry_id}", &f.waitlist_entry)
        .replace("{kiosk_id}", &f.kiosk)
        .replace("{item_id}", &f.item)
        .replace("{po_id}", purchase_order)
        .replace("{spool_id}", &f.spool)
        .replace("{job_id}", &f.job)
        .replace("{service_order_id}", &f.service_order)
        .replace("{charge_id}", &f.charge)
        .replace("{invoice_id}", invoice)
        .replace("{checkout_id}", "no-such-checkout")
}

#[actix_web::test]
async fn every_endpoint_answers_every_role_as_the_matrix_says() {
    let t = TestApp::spawn().await;
    let (_, doc) = t.get("/api/openapi.json", None).await;
    let documented: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(path, ops)| {
            ops.as_object().into_iter().flat_map(move |o| o.keys().map(move |m| (m.to_uppercase(), path.clone())))
        })
        .collect();
    let ruled: BTreeSet<(String, String)> = RULES.iter().map(|(m, p, _)| (m.to_string(), p.to_string())).collect();
    let without_rule: Vec<_> = documented.difference(&ruled).collect();
    assert!(
        without_rule.is_empty(),
        "endpoints without an access rule in tests/integration/roles.rs: {without_rule:?}"
    );
    let undocumented: Vec<_> = ruled.difference(&documented).collect();
    assert!(undocumented.is_empty(), "rules for endpoints missing from the OpenAPI document: {undocumented:?}");

    // Calls that must fail change nothing, so they share one fixture; each call that should
    // succeed and may change something gets its own.
    let shared = fixture(&t, 0).await;
    let mut n = 1;
    let mut failures = Vec::new();
    for (method, path, rule) in RULES {
        for who in EVERYONE {
            let expected = rule.expect(who);
            let fresh;
            let f = if expected == 2 && *method != "GET" {
                n += 1;
                fresh = fixture(&t, n).await;
                &fresh
            } else {
                &shared
            };
            let url = concrete(path, method, f);
            let mut req = t.http.request(method.parse::<Method>().expect("method"), t.url(&url));
            if let Some(tok) = token(&t, who, &f.space) {
                req = req.bearer_auth(tok);
            }
            if *path == "/api/v1/makerspaces/{makerspace_id}/members/import" {
                req = req
                    .header("content-type", "text/csv")
                    .body(format!("email,first_name,last_name\nimp{n}@example.org,I,M\n"));
            } else if *path == "/api/v1/makerspaces/{makerspace_id}/inventory/import" {
                req = req
                    .header("content-type", "text/csv")
                    .body(format!("name,category,unit\nImported {n},tool,piece\n"));
            } else if (*path == "/api/v1/makerspaces/{makerspace_id}/jobs" && *method == "POST")
                || *path == "/api/v1/jobs/upload"
            {
                let (content_type, body) =
                    crate::job_queue::form("part.gcode", &crate::job_queue::sliced_gcode("1"), None);
                req = req.header("content-type", content_type).body(body);
            } else if let Some(b) = body(method, path, f, n) {
                req = req.json(&b);
            }
            if *method == "POST" && (path.contains("/billing/") || path.contains("/wallet/")) {
                req = req.header("Idempotency-Key", format!("roles-{n}-{who:?}"));
            }
            let res = req.send().await.expect("request");
            let status = res.status().as_u16();
            let ok = if expected == 2 { (200..300).contains(&status) } else { status == expected };
            if !ok {
                let text = res.text().await.unwrap_or_default();
                failures.push(format!("{who:?} {method} {url}: expected {expected}, got {status}: {text}"));
            }
        }
    }
    assert!(failures.is_empty(), "{} calls answered against the matrix:\n{}", failures.len(), failures.join("\n"));
    t.stop().await;
}
