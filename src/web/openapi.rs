//! The OpenAPI 3 document, generated from the handlers' annotations and finished by one
//! central pass ([`finish`]) that adds what every operation shares: the error answers the
//! extractors, authentication and the store can give (401, 403, 404, 400/413/415/422, 503),
//! the id pattern of path parameters, unique operation ids, and links from each create
//! operation to the operations that use the id it returns.
//!
//! The same document tells the router which methods a path serves ([`allowed_methods`]), so
//! that a method the document does not list is answered 405 with an `Allow` header.

use std::collections::BTreeSet;
use std::sync::OnceLock;

use actix_web::HttpResponse;
use serde_json::{json, Map, Value};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::web::validate::{LINE, MULTI_LINE, NOT_BLANK, NOT_BLANK_LINE, REFUSED_IN_LINE};
use crate::web::{
    cards, equipment, invites, job_control, makerspaces, member_csv, members, mqtt_credentials, ops, plans, ws,
};

/// The pattern of ids (client-chosen ones and the UUIDs the server mints).
pub const ID_PATTERN: &str = "^[a-z0-9][a-z0-9-]{0,63}$";

#[derive(OpenApi)]
#[openapi(
    info(title = "makrcave", description = "Real-time shop floor for makerspaces and print farms."),
    paths(
        makerspaces::create, makerspaces::list, makerspaces::get, makerspaces::update, makerspaces::delete,
        equipment::create, equipment::list, equipment::get, equipment::update, equipment::delete,
        equipment::live_state, equipment::lock, mqtt_credentials::issue_mqtt_credentials, mqtt_credentials::revoke_mqtt_credentials,
        job_control::pause, job_control::resume, job_control::cancel, job_control::clear,
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
        components.add_security_scheme(
            "device",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("A kiosk's device token, issued once by POST /api/v1/makerspaces/{id}/kiosks"))
                    .build(),
            ),
        );
    }
}

/// The document as the annotations give it: the core paths above, merged with those of
/// feature modules that describe themselves (each with its own `#[derive(OpenApi)]`), so that
/// a feature adds its endpoints in its own module.
pub fn document() -> utoipa::openapi::OpenApi {
    // Feature modules merge in here: `doc.merge(crate::web::FEATURE::Api::openapi());`
    let mut doc = ApiDoc::openapi();
    doc.merge(crate::web::skills::SkillsApi::openapi());
    doc.merge(crate::web::reservations::ReservationsApi::openapi());
    doc.merge(crate::web::waitlist::WaitlistApi::openapi());
    doc.merge(crate::web::kiosk::KioskApi::openapi());
    doc.merge(crate::web::bridges::BridgesApi::openapi());
    doc.merge(crate::web::inventory::InventoryApi::openapi());
    doc.merge(crate::web::purchase_orders::PurchaseOrdersApi::openapi());
    doc.merge(crate::web::spools::SpoolsApi::openapi());
    doc.merge(crate::web::jobs::JobsApi::openapi());
    doc.merge(crate::web::job_priority::JobPriorityApi::openapi());
    doc.merge(crate::web::machine_health::MachineHealthApi::openapi());
    doc.merge(crate::web::inventory_bulk::InventoryBulkApi::openapi());
    doc.merge(crate::web::inventory_csv::InventoryCsvApi::openapi());
    doc.merge(crate::web::bom::BomApi::openapi());
    doc.merge(crate::web::pricing::PricingApi::openapi());
    doc.merge(crate::web::billing::BillingApi::openapi());
    doc.merge(crate::web::billing_wallet::WalletApi::openapi());
    doc.merge(crate::web::billing_gateways::GatewaysApi::openapi());
    doc.merge(crate::web::invoices::InvoicesApi::openapi());
    doc.merge(crate::web::billing_exports::BillingExportsApi::openapi());
    doc.merge(crate::web::providers::ProvidersApi::openapi());
    doc
}

/// The served document: [`document`] finished by [`finish`]. Built once.
pub fn contract() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(|| finish(serde_json::to_value(document()).unwrap_or_else(|_| json!({}))))
}

pub async fn serve() -> HttpResponse {
    HttpResponse::Ok().json(contract())
}

const METHODS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

/// Adds what every operation shares to the generated document.
pub fn finish(mut doc: Value) -> Value {
    let references = body_references(&doc);
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return doc;
    };
    let mut used_ids = BTreeSet::new();
    let templates: Vec<String> = paths.keys().cloned().collect();
    for (path, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else { continue };
        for (method, op) in item.iter_mut() {
            if !METHODS.contains(&method.as_str()) {
                continue;
            }
            let Some(op) = op.as_object_mut() else { continue };
            finish_operation(path, method, op, &mut used_ids);
        }
    }
    add_links(paths, &templates, &references);
    close_request_schemas(&mut doc);
    spell_out_blank(&mut doc);
    doc
}

/// The annotations write the text rules of [`crate::domain::validate`] as short patterns
/// that the derive checks but that mean different sets of characters in ECMA, Python (and
/// Python in ASCII mode) and Rust, or that Python cannot read (`\p{..}`); the document
/// spells out the classes the server uses:
/// - `\S`, a required one-line text (a name): [`NOT_BLANK_LINE`];
/// - `^\P{Cc}*$`, an optional one-line text: [`LINE`] (the line separators U+2028 and
///   U+2029 are refused too);
/// - `^[\P{Cc}\t\n]*$`, a text of several lines: [`MULTI_LINE`].
fn spell_out_blank(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                let spelled = match v.as_str() {
                    Some(r"\S") => Some(NOT_BLANK_LINE),
                    Some(r"^\P{Cc}*$") => Some(LINE),
                    Some(r"^[\P{Cc}\t\n]*$") => Some(MULTI_LINE),
                    _ => None,
                };
                match spelled {
                    Some(pattern) if key == "pattern" => *v = json!(pattern),
                    _ => spell_out_blank(v),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(spell_out_blank),
        _ => {}
    }
}

/// Request bodies refuse unknown fields (`deny_unknown_fields`): every object schema a
/// request body reaches says so. Free-form objects (`settings`, `specifications`) have no
/// `properties` and stay open.
fn close_request_schemas(doc: &mut Value) {
    let mut pending: Vec<String> = Vec::new();
    if let Some(paths) = doc.get("paths").and_then(Value::as_object) {
        for item in paths.values().filter_map(Value::as_object) {
            for op in item.values() {
                if let Some(body) = op.get("requestBody") {
                    collect_refs(body, &mut pending);
                }
            }
        }
    }
    let mut seen = BTreeSet::new();
    while let Some(name) = pending.pop() {
        if !seen.insert(name.clone()) {
            continue;
        }
        if let Some(schema) = doc.pointer(&format!("/components/schemas/{name}")) {
            collect_refs(schema, &mut pending);
        }
    }
    for name in seen {
        if let Some(schema) = doc.pointer_mut(&format!("/components/schemas/{name}")) {
            close_objects(schema);
        }
    }
    // What the items of lists must be (the derive cannot say it of items).
    let text = json!({"type": "string", "minLength": 1, "maxLength": 100, "pattern": NOT_BLANK_LINE});
    let id = json!({"type": "string", "pattern": ID_PATTERN});
    for (schema, property, items) in [
        ("EquipmentCreate", "skill_requirements", &text),
        ("EquipmentUpdate", "skill_requirements", &text),
        ("PlanCreate", "features", &text),
        ("PlanUpdate", "features", &text),
        ("KioskCreate", "equipment_ids", &id),
        ("SkillCreate", "prerequisite_ids", &id),
        ("SkillUpdate", "prerequisite_ids", &id),
        ("SkillCreate", "equipment_ids", &id),
        ("SkillUpdate", "equipment_ids", &id),
        ("PurchaseOrderCreate", "alert_ids", &id),
    ] {
        if let Some(slot) = doc.pointer_mut(&format!("/components/schemas/{schema}/properties/{property}/items")) {
            *slot = items.clone();
        }
    }
    refine_schemas(doc);
    // The booking rules inside a makerspace's settings are checked: say which.
    for name in ["MakerspaceCreate", "MakerspaceUpdate"] {
        if let Some(settings) = doc.pointer_mut(&format!("/components/schemas/{name}/properties/settings")) {
            *settings = json!({
                "type": ["object", "null"],
                "description": "Free-form settings; `booking` holds the booking rules.",
                "properties": {"booking": BOOKING_RULES.clone()}
            });
        }
    }
}

/// A Bambu printer's connection: a host name or address, its ports (MQTT and FTPS), and
/// exactly one way to check its certificate (a null counts as absent, as serde reads it).
fn bambu(variant: &mut Value) {
    let Some(props) = variant.get_mut("properties").and_then(Value::as_object_mut) else { return };
    props.insert("host".into(), json!({"type": "string", "pattern": "^[!-.0-~]+$"}));
    for name in ["port", "ftps_port"] {
        if let Some(port) = props.get_mut(name).and_then(Value::as_object_mut) {
            port.insert("maximum".into(), json!(65535));
        }
    }
    props.insert("ca_file".into(), json!({"type": ["string", "null"], "pattern": NOT_BLANK_LINE}));
    props.insert(
        "fingerprint_sha256".into(),
        json!({"type": ["string", "null"], "pattern": crate::domain::equipment::FINGERPRINT_PATTERN}),
    );
    if let Some(variant) = variant.as_object_mut() {
        variant.insert(
            "oneOf".into(),
            json!([
                {"required": ["ca_file"], "properties": {"ca_file": {"type": "string"}}},
                {"required": ["fingerprint_sha256"], "properties": {"fingerprint_sha256": {"type": "string"}}},
            ]),
        );
    }
}

/// Rules of single schemas that the derive cannot say.
fn refine_schemas(doc: &mut Value) {
    // How a machine talks: names without MQTT wildcards, an http(s) URL, a non-negative
    // threshold. The `mqtt` kind has no fields, and serde ignores any it is given.
    if let Some(variants) = doc.pointer_mut("/components/schemas/Connection/oneOf").and_then(Value::as_array_mut) {
        let name = json!({"type": "string", "pattern": NOT_BLANK_LINE.replace("[^", "[^+#")});
        for variant in variants.iter_mut() {
            let Some(props) = variant.get_mut("properties").and_then(Value::as_object_mut) else { continue };
            let only_kind = props.len() == 1;
            for field in ["topic", "device_id", "serial"] {
                if let Some(slot) = props.get_mut(field) {
                    *slot = name.clone();
                }
            }
            if let Some(slot) = props.get_mut("running_above_w") {
                *slot = json!({"type": ["number", "null"], "minimum": 0});
            }
            if let Some(slot) = props.get_mut("running_after_s") {
                *slot = json!({"type": ["number", "null"], "minimum": 0,
                    "maximum": crate::domain::equipment::MAX_RUNNING_AFTER_S});
            }
            if let Some(slot) = props.get_mut("url") {
                let host = NOT_BLANK.replace("[^", &format!("[^/?#{REFUSED_IN_LINE}"));
                let pattern = format!("^https?://{host}[^{REFUSED_IN_LINE}]*$");
                *slot = json!({"type": "string", "format": "uri", "pattern": pattern});
            }
            if props.contains_key("fingerprint_sha256") {
                bambu(variant);
                continue;
            }
            if only_kind {
                if let Some(variant) = variant.as_object_mut() {
                    variant.remove("additionalProperties");
                }
            }
        }
    }
    // A decision approves or rejects.
    if let Some(status) = doc.pointer_mut("/components/schemas/SkillRequestDecision/properties/status") {
        *status = json!({"type": "string", "enum": ["approved", "rejected"]});
    }
    // A forced grant or approval needs its reason.
    for name in ["GrantRequest", "SkillRequestDecision"] {
        if let Some(schema) = doc.pointer_mut(&format!("/components/schemas/{name}")).and_then(Value::as_object_mut) {
            schema.insert("if".into(), json!({"properties": {"force": {"const": true}}, "required": ["force"]}));
            schema.insert(
                "then".into(),
                json!({"required": ["reason"], "properties": {"reason": {
                    "type": "string", "minLength": 1, "maxLength": 1000, "pattern": NOT_BLANK_LINE}}}),
            );
        }
    }
    // A bulk suspension needs its reason; the other operations ignore it.
    if let Some(bulk) = doc.pointer_mut("/components/schemas/BulkRequest").and_then(Value::as_object_mut) {
        bulk.insert("if".into(), json!({"properties": {"operation": {"const": "suspend"}}, "required": ["operation"]}));
        bulk.insert(
            "then".into(),
            json!({"required": ["reason"], "properties": {"reason": {
                "type": "string", "minLength": 1, "maxLength": 1000, "pattern": NOT_BLANK_LINE}}}),
        );
        if let Some(reason) = bulk.get_mut("properties").and_then(|p| p.get_mut("reason")) {
            *reason =
                json!({"type": ["string", "null"], "description": "Required for suspend (1 to 1000 characters)."});
        }
    }
}

static BOOKING_RULES: std::sync::LazyLock<Value> = std::sync::LazyLock::new(|| {
    json!({
        "type": ["object", "null"],
        "additionalProperties": false,
        "properties": {
            "max_hours": {"type": "integer", "minimum": 1, "maximum": 744, "description": "Longest booking, in hours [default: 8]."},
            "max_days_ahead": {"type": "integer", "minimum": 1, "maximum": 1098, "description": "How far ahead a booking may start, in days [default: 30]."},
            "min_gap_minutes": {"type": "integer", "minimum": 0, "maximum": 1440, "description": "Minutes kept free between two bookings of one machine [default: 0]."},
            "check_in_window_minutes": {"type": "integer", "minimum": 0, "maximum": 1440, "description": "Minutes either side of the start in which a member checks in [default: 15]."}
        }
    })
});

fn collect_refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(name) =
                map.get("$ref").and_then(Value::as_str).and_then(|r| r.strip_prefix("#/components/schemas/"))
            {
                out.push(name.to_string());
            }
            map.values().for_each(|v| collect_refs(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

fn close_objects(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if map.contains_key("properties") {
                map.entry("additionalProperties").or_insert(json!(false));
            }
            map.values_mut().for_each(close_objects);
        }
        Value::Array(items) => items.iter_mut().for_each(close_objects),
        _ => {}
    }
}

/// A response whose body is the error shape.
fn error_response(status: &str) -> Value {
    json!({
        "description": reason(status),
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
    })
}

fn reason(status: &str) -> &'static str {
    match status {
        "200" => "OK",
        "201" => "Created",
        "204" => "No Content",
        "101" => "Switching Protocols",
        "400" => "Bad Request: the body is not valid JSON",
        "401" => "Unauthorized: no token, or a token that is not valid",
        "403" => "Forbidden: the caller's role does not allow this",
        "404" => "Not Found",
        "409" => "Conflict",
        "413" => "Payload Too Large",
        "415" => "Unsupported Media Type",
        "422" => "Unprocessable Entity: a value is of the wrong shape or not allowed",
        "429" => "Too Many Requests",
        "503" => "Service Unavailable: the database or the key server cannot be reached",
        _ => "Response",
    }
}

fn finish_operation(path: &str, method: &str, op: &mut Map<String, Value>, used_ids: &mut BTreeSet<String>) {
    // Operation ids must be unique in a document: the handlers' names are not.
    let base = op.get("operationId").and_then(Value::as_str).unwrap_or("op").to_string();
    let tag = op.get("tags").and_then(|t| t.get(0)).and_then(Value::as_str).unwrap_or("api").replace('-', "_");
    let mut id = if used_ids.contains(&base) || !base.starts_with(&tag) { format!("{tag}_{base}") } else { base };
    if used_ids.contains(&id) {
        id = format!("{method}_{}", path.trim_start_matches("/api/v1/").replace(['/', '{', '}', '-'], "_"));
    }
    used_ids.insert(id.clone());
    op.insert("operationId".into(), json!(id));

    let secured = op.get("security").and_then(Value::as_array).is_some_and(|s| !s.is_empty());
    let mut has_path_params = false;
    let mut has_query = false;
    if let Some(params) = op.get_mut("parameters").and_then(Value::as_array_mut) {
        for param in params.iter_mut() {
            let Some(param) = param.as_object_mut() else { continue };
            match param.get("in").and_then(Value::as_str) {
                Some("path") => {
                    has_path_params = true;
                    let name = param.get("name").and_then(Value::as_str).unwrap_or_default();
                    if name.ends_with("_id") {
                        param.insert("schema".into(), json!({"type": "string", "pattern": ID_PATTERN}));
                    }
                }
                Some("query") => {
                    has_query = true;
                    // A query parameter is absent or has a value: `null` means nothing in a URL.
                    if let Some(schema) = param.get_mut("schema") {
                        strip_null(schema);
                    }
                }
                _ => {}
            }
        }
    }
    let json_body = op
        .get("requestBody")
        .and_then(|b| b.get("content"))
        .and_then(Value::as_object)
        .is_some_and(|c| c.contains_key("application/json"));
    let any_body = op.get("requestBody").is_some();
    let api = path.starts_with("/api/v1/");

    let Some(responses) = op.entry("responses").or_insert_with(|| json!({})).as_object_mut() else { return };
    let mut add = |status: &str| {
        responses.entry(status.to_string()).or_insert_with(|| error_response(status));
    };
    if secured {
        add("401");
        add("403");
    }
    if has_path_params {
        add("404");
    }
    if has_query {
        add("422");
    }
    if json_body {
        for status in ["400", "413", "415", "422"] {
            add(status);
        }
    } else if any_body {
        for status in ["413", "415", "422"] {
            add(status);
        }
    }
    if api {
        add("503");
    }
    if path == "/api/v1/ws" {
        let mut refused = error_response("400");
        refused["description"] = json!("Not a WebSocket upgrade request");
        responses.insert("400".into(), refused);
    }
    // The headers the error answers carry.
    for (status, header, description) in
        [("401", "WWW-Authenticate", "Bearer"), ("429", "Retry-After", "Seconds until the next attempt may succeed")]
    {
        if let Some(response) = responses.get_mut(status).and_then(Value::as_object_mut) {
            let headers = response.entry("headers").or_insert_with(|| json!({}));
            headers[header] = json!({"description": description, "required": true, "schema": {"type": "string"}});
        }
    }
    // Every response needs a description (OpenAPI 3); the annotations often leave it out.
    for (status, response) in responses.iter_mut() {
        if let Some(response) = response.as_object_mut() {
            response.entry("description").or_insert_with(|| json!(reason(status)));
        }
    }
}

/// Removes `null` from a schema's types (`["string", "null"]`, `oneOf: [X, {"type": "null"}]`).
fn strip_null(schema: &mut Value) {
    let Some(obj) = schema.as_object_mut() else { return };
    if let Some(types) = obj.get("type").and_then(Value::as_array) {
        let kept: Vec<Value> = types.iter().filter(|t| t.as_str() != Some("null")).cloned().collect();
        let single = if kept.len() == 1 { kept[0].clone() } else { Value::Array(kept) };
        obj.insert("type".into(), single);
    }
    if let Some(one_of) = obj.get("oneOf").and_then(Value::as_array) {
        let kept: Vec<Value> =
            one_of.iter().filter(|s| s.get("type").and_then(Value::as_str) != Some("null")).cloned().collect();
        if kept.len() == 1 {
            obj.remove("oneOf");
            if let Some(only) = kept[0].as_object() {
                for (k, v) in only {
                    obj.insert(k.clone(), v.clone());
                }
            }
        } else {
            obj.insert("oneOf".into(), Value::Array(kept));
        }
    }
}

/// The operations (path, method) whose JSON body must name another resource (a required
/// `*_id` field, such as a booking's `equipment_id`): a link that only fills their path cannot
/// make a usable request, and their 404 would be about the body, not the linked resource.
fn body_references(doc: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    let Some(paths) = doc.get("paths").and_then(Value::as_object) else { return out };
    for (path, item) in paths {
        for (method, op) in item.as_object().into_iter().flatten() {
            let schema = op.pointer("/requestBody/content/application~1json/schema/$ref").and_then(Value::as_str);
            let Some(name) = schema.and_then(|r| r.strip_prefix("#/components/schemas/")) else { continue };
            let required = doc.pointer(&format!("/components/schemas/{name}/required")).and_then(Value::as_array);
            if required.into_iter().flatten().filter_map(Value::as_str).any(|f| f.ends_with("_id")) {
                out.insert((path.clone(), method.clone()));
            }
        }
    }
    out
}

/// Links that carry the new id in the body of the next request: (create path, path of the
/// POST that uses it, body field).
const BODY_LINKS: &[(&str, &str, &str)] = &[
    (
        "/api/v1/makerspaces/{makerspace_id}/equipment",
        "/api/v1/makerspaces/{makerspace_id}/reservations",
        "equipment_id",
    ),
    ("/api/v1/makerspaces/{makerspace_id}/equipment", "/api/v1/makerspaces/{makerspace_id}/waitlist", "equipment_id"),
    ("/api/v1/makerspaces/{makerspace_id}/members/plans", "/api/v1/makerspaces/{makerspace_id}/members", "plan_id"),
    (
        "/api/v1/makerspaces/{makerspace_id}/members/plans",
        "/api/v1/makerspaces/{makerspace_id}/members/invites",
        "plan_id",
    ),
    ("/api/v1/skills", "/api/v1/skills/requests", "skill_id"),
    ("/api/v1/skills", "/api/v1/skills/user-skills", "skill_id"),
    ("/api/v1/makerspaces", "/api/v1/bom/sync-inventory", "makerspace_id"),
];

/// Links from each create operation (`POST P` answering 201) to every operation on
/// `P/{id}` and below: the new id fills `{id}`, the parameters of `P` come from the request;
/// and the [`BODY_LINKS`].
fn add_links(paths: &mut Map<String, Value>, templates: &[String], references: &BTreeSet<(String, String)>) {
    let mut links: Vec<(String, Map<String, Value>)> = Vec::new();
    for create_path in templates {
        let Some(create) = paths.get(create_path).and_then(|item| item.get("post")) else { continue };
        if create.get("responses").and_then(|r| r.get("201")).is_none() {
            continue;
        }
        let prefix = format!("{create_path}/{{");
        let mut out = Map::new();
        for target in templates.iter().filter(|t| t.starts_with(&prefix)) {
            let rest = &target[prefix.len()..];
            let Some(end) = rest.find('}') else { continue };
            let new_param = &rest[..end];
            let Some(item) = paths.get(target).and_then(Value::as_object) else { continue };
            // What a path's own POST creates (a machine's MQTT credentials) is not there
            // until that POST: deleting it right after the parent's create would be a 404.
            let created_here = item.get("post").and_then(|op| op.pointer("/responses/201")).is_some();
            for (method, op) in item {
                if !METHODS.contains(&method.as_str())
                    || references.contains(&(target.clone(), method.clone()))
                    || (created_here && method == "delete")
                {
                    continue;
                }
                let Some(op_id) = op.get("operationId").and_then(Value::as_str) else { continue };
                let mut parameters = Map::new();
                for param in path_params(target) {
                    let value = if param == new_param {
                        "$response.body#/id".to_string()
                    } else if path_params(create_path).contains(&param) {
                        format!("$request.path.{param}")
                    } else {
                        // A deeper id the create does not know: the link cannot fill it.
                        parameters.clear();
                        break;
                    };
                    parameters.insert(path_param_key(&param), json!(value));
                }
                if parameters.is_empty() {
                    continue;
                }
                let name = format!("{}{}", method_title(method), op_id);
                out.insert(name, json!({ "operationId": op_id, "parameters": parameters }));
            }
        }
        for (_, target, field) in BODY_LINKS.iter().filter(|(source, _, _)| source == create_path) {
            let Some(op_id) = paths.get(*target).and_then(|item| item.get("post")).and_then(|op| op.get("operationId"))
            else {
                continue;
            };
            let parameters: Map<String, Value> = path_params(target)
                .into_iter()
                .map(|param| (path_param_key(&param), json!(format!("$request.path.{param}"))))
                .collect();
            out.insert(
                format!("Post{}", op_id.as_str().unwrap_or_default()),
                json!({ "operationId": op_id, "parameters": parameters, "requestBody": { *field: "$response.body#/id" } }),
            );
        }
        if !out.is_empty() {
            links.push((create_path.clone(), out));
        }
    }
    for (create_path, out) in links {
        if let Some(created) = paths
            .get_mut(&create_path)
            .and_then(|item| item.get_mut("post"))
            .and_then(|op| op.get_mut("responses"))
            .and_then(|r| r.get_mut("201"))
            .and_then(Value::as_object_mut)
        {
            created.insert("links".into(), Value::Object(out));
        }
    }
}

fn path_param_key(param: &str) -> String {
    format!("path.{param}")
}

fn method_title(method: &str) -> String {
    let mut chars = method.chars();
    chars.next().map(|c| c.to_ascii_uppercase().to_string() + chars.as_str()).unwrap_or_default()
}

fn path_params(template: &str) -> Vec<String> {
    template
        .split('/')
        .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(str::to_string)
        .collect()
}

/// Routes served outside the document (pages, the document itself).
const UNDOCUMENTED_ROUTES: &[(&str, &str)] =
    &[("/api/openapi.json", "GET"), ("/", "GET"), ("/kiosk", "GET"), ("/static/{file}", "GET"), ("/demo/token", "GET")];

struct Route {
    segments: Vec<Option<String>>,
    /// Which segments are literal, for choosing among templates that match a path (computed
    /// once: the check runs on every request).
    literal: Vec<bool>,
    methods: Vec<String>,
}

impl Route {
    fn new(template: &str, methods: Vec<String>) -> Route {
        let segments: Vec<Option<String>> =
            template.split('/').map(|s| (!s.starts_with('{')).then(|| s.to_string())).collect();
        let literal = segments.iter().map(Option::is_some).collect();
        Route { segments, literal, methods }
    }
}

fn routes() -> &'static [Route] {
    static ROUTES: OnceLock<Vec<Route>> = OnceLock::new();
    ROUTES.get_or_init(|| {
        let mut out: Vec<Route> = Vec::new();
        if let Some(paths) = contract().get("paths").and_then(Value::as_object) {
            for (template, item) in paths {
                let methods = item
                    .as_object()
                    .map(|ops| {
                        ops.keys().filter(|m| METHODS.contains(&m.as_str())).map(|m| m.to_ascii_uppercase()).collect()
                    })
                    .unwrap_or_default();
                out.push(Route::new(template, methods));
            }
        }
        for (template, method) in UNDOCUMENTED_ROUTES {
            out.push(Route::new(template, vec![method.to_string()]));
        }
        out
    })
}

/// The methods the route serving `path` answers, or `None` when no route serves the path.
/// When several templates match (`/members/plans` and `/members/{member_id}`), the one with
/// a literal segment earliest wins, as in the router.
pub fn allowed_methods(path: &str) -> Option<&'static [String]> {
    let parts = path.split('/').count();
    let matches = |route: &Route| {
        route.segments.len() == parts
            && route.segments.iter().zip(path.split('/')).all(|(seg, part)| match seg {
                Some(literal) => literal == part,
                None => !part.is_empty(),
            })
    };
    routes().iter().filter(|r| matches(r)).max_by(|a, b| a.literal.cmp(&b.literal)).map(|r| r.methods.as_slice())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn operation<'a>(method: &str, path: &str) -> &'a Value {
        &contract()["paths"][path][method]
    }

    #[test]
    fn operations_list_the_shared_error_answers() {
        let create = operation("post", "/api/v1/makerspaces/{makerspace_id}/equipment");
        for status in ["201", "400", "401", "403", "404", "409", "413", "415", "422", "503"] {
            assert!(create["responses"][status].is_object(), "equipment create lacks {status}");
        }
        let error = &create["responses"]["401"]["content"]["application/json"]["schema"]["$ref"];
        assert_eq!(error, "#/components/schemas/ErrorBody");
        let list = operation("get", "/api/v1/makerspaces/{makerspace_id}/members");
        assert!(list["responses"]["422"].is_object());
        let page_size = list["parameters"].as_array().and_then(|p| p.iter().find(|p| p["name"] == "page_size"));
        let page_size = page_size.expect("page_size is documented");
        assert_eq!(page_size["in"], "query");
        assert_eq!(page_size["schema"]["maximum"], 200);
        // Operation ids are unique.
        let mut ids = BTreeSet::new();
        for item in contract()["paths"].as_object().expect("paths").values() {
            for op in item.as_object().expect("operations").values() {
                let id = op["operationId"].as_str().expect("an operation id").to_string();
                assert!(ids.insert(id.clone()), "duplicate operation id {id}");
            }
        }
    }

    #[test]
    fn throttled_answers_are_documented_with_retry_after() {
        for (method, path) in [("get", "/api/v1/ws"), ("post", "/api/v1/kiosk/unlock"), ("post", "/api/v1/kiosk/lock")]
        {
            let answer = &operation(method, path)["responses"]["429"];
            assert_eq!(answer["headers"]["Retry-After"]["required"], true, "{method} {path}: {answer}");
            assert_eq!(answer["content"]["application/json"]["schema"]["$ref"], "#/components/schemas/ErrorBody");
        }
        let update = operation("put", "/api/v1/makerspaces/{makerspace_id}/kiosks/{kiosk_id}");
        for status in ["200", "401", "403", "404", "422"] {
            assert!(update["responses"][status].is_object(), "kiosk update lacks {status}");
        }
    }

    #[test]
    fn the_document_states_the_input_rules() {
        let schemas = &contract()["components"]["schemas"];
        let property = |schema: &str, field: &str| schemas[schema]["properties"][field].clone();
        assert_eq!(property("MakerspaceCreate", "name")["pattern"], NOT_BLANK_LINE);
        assert_eq!(property("MemberCreate", "first_name")["pattern"], NOT_BLANK_LINE);
        assert_eq!(property("KioskCreate", "name")["pattern"], NOT_BLANK_LINE);
        assert_eq!(property("EquipmentCreate", "location")["pattern"], LINE);
        assert_eq!(property("CardCreate", "label")["pattern"], LINE);
        assert_eq!(property("MakerspaceCreate", "description")["pattern"], MULTI_LINE);
        assert_eq!(property("MemberCreate", "notes")["pattern"], MULTI_LINE);
        assert_eq!(property("ReservationCreate", "purpose")["pattern"], MULTI_LINE);
        assert_eq!(property("InviteCreate", "message")["pattern"], MULTI_LINE);
        assert_eq!(property("EquipmentCreate", "skill_requirements")["items"]["pattern"], NOT_BLANK_LINE);
        for (schema, field) in [
            ("EquipmentCreate", "hourly_rate"),
            ("EquipmentUpdate", "hourly_rate"),
            ("PlanCreate", "price"),
            ("PlanUpdate", "price"),
        ] {
            assert_eq!(property(schema, field)["minimum"], 0.0, "{schema}.{field}");
            assert_eq!(property(schema, field)["maximum"], crate::web::validate::MAX_AMOUNT, "{schema}.{field}");
        }
        // A Bambu printer's ports, as its connection validates them.
        let variants = schemas["Connection"]["oneOf"].as_array().expect("the kinds of connection");
        let bambu = variants.iter().find(|v| v["properties"].get("ftps_port").is_some()).expect("bambu");
        for (port, default) in [("port", 8883), ("ftps_port", 990)] {
            let schema = &bambu["properties"][port];
            assert_eq!((&schema["minimum"], &schema["maximum"]), (&json!(1), &json!(65535)), "{port}");
            assert_eq!(schema["default"], default, "{port}");
        }
        // Every marker of the annotations was spelled out.
        let text = contract().to_string();
        for marker in [r#""\\S""#, r"\\P{Cc}"] {
            assert!(!text.contains(marker), "{marker} left in the document");
        }
    }

    #[test]
    fn creates_link_to_the_operations_on_what_they_create() {
        let links = &operation("post", "/api/v1/makerspaces")["responses"]["201"]["links"];
        let get = links.as_object().expect("links").values().find(|l| l["operationId"] == "makerspaces_get");
        assert_eq!(get.expect("a link to GET")["parameters"]["path.makerspace_id"], "$response.body#/id");
        let links = &operation("post", "/api/v1/makerspaces/{makerspace_id}/equipment")["responses"]["201"]["links"];
        let delete = links.as_object().expect("links").values().find(|l| l["operationId"] == "equipment_delete");
        let parameters = &delete.expect("a link to DELETE")["parameters"];
        assert_eq!(parameters["path.makerspace_id"], "$request.path.makerspace_id");
        assert_eq!(parameters["path.equipment_id"], "$response.body#/id");
    }

    #[test]
    fn the_most_specific_route_decides_the_allowed_methods() {
        let allowed = |path| allowed_methods(path).map(|m| m.join(","));
        assert_eq!(allowed("/api/v1/makerspaces/a/equipment/available").as_deref(), Some("GET"));
        assert_eq!(allowed("/api/v1/makerspaces/a/equipment/m1").as_deref(), Some("DELETE,GET,PUT"));
        assert_eq!(allowed("/api/v1/makerspaces/a/members/plans").as_deref(), Some("GET,POST"));
        assert_eq!(allowed("/healthz").as_deref(), Some("GET"));
        assert_eq!(allowed("/api/v1/nothing-here"), None);
        assert_eq!(allowed("/api/v1/makerspaces//equipment"), None);
    }
}
