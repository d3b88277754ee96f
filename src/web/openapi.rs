//! The OpenAPI 3 document, generated from the handlers' annotations.

use actix_web::HttpResponse;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::web::{cards, equipment, invites, makerspaces, member_csv, members, ops, plans, ws};

#[derive(OpenApi)]
#[openapi(
    info(title = "makrcave", description = "Real-time shop floor for makerspaces and print farms."),
    paths(
        makerspaces::create, makerspaces::list, makerspaces::get, makerspaces::update, makerspaces::delete,
        equipment::create, equipment::list, equipment::get, equipment::update, equipment::delete,
        equipment::live_state, equipment::lock,
        members::create, members::list, members::get, members::update, members::delete, members::suspend,
        members::reactivate, members::activities, members::statistics, members::bulk,
        member_csv::export, member_csv::import,
        plans::create, plans::list, plans::get, plans::update, plans::delete,
        invites::create, invites::list, invites::resend, invites::cancel, invites::accept, invites::validate,
        invites::my_makerspaces,
        cards::create, cards::list, cards::delete, cards::lookup,
        ws::connect,
        ops::healthz, ops::metrics,
    ),
    components(schemas(crate::web::ErrorBody)),
    modifiers(&BearerAuth),
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
        );
    }
}

/// The whole document: the core paths above, merged with those of feature modules that
/// describe themselves (each with its own `#[derive(OpenApi)]`), so that a feature adds its
/// endpoints in its own module.
pub fn document() -> utoipa::openapi::OpenApi {
    // Feature modules merge in here: `doc.merge(crate::web::FEATURE::Api::openapi());`
    let mut doc = ApiDoc::openapi();
    doc.merge(crate::web::skills::SkillsApi::openapi());
    doc.merge(crate::web::reservations::ReservationsApi::openapi());
    doc.merge(crate::web::waitlist::WaitlistApi::openapi());
    doc.merge(crate::web::kiosk::KioskApi::openapi());
    doc
}

pub async fn serve() -> HttpResponse {
    HttpResponse::Ok().json(document())
}
