//! `/api/v1/makerspaces/{id}/inventory/alerts` and `/api/v1/makerspaces/{id}/purchase-orders`:
//! low-stock alerts and purchase orders over HTTP. The workflows are
//! [`crate::services::reorders`], [`crate::services::purchase_orders`] and
//! [`crate::services::purchase_receipts`].

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};

use crate::domain::purchasing::{AlertStatus, OrderStatus};
use crate::services::makrx_store::{BomItem, StorePayload};
use crate::services::purchase_orders::{
    self, Amount, OrderEventResponse, OrderLineRequest, OrderLineResponse, OrderSupplier, PurchaseOrderCreate,
    PurchaseOrderResponse, PurchaseOrderSummary, StoreSync,
};
use crate::services::purchase_receipts::{self, ReceiveLineRequest, ReceiveOrderRequest};
use crate::services::reorders::{self, AlertResponse};
use crate::store::stock_alerts::AlertFilter;
use crate::web::auth::Caller;
use crate::web::error::ApiError;
use crate::web::paging::{Page, PageInfo};
use crate::web::AppState;

#[derive(OpenApi)]
#[openapi(
    paths(alerts, create, list, get, order, cancel, receive),
    components(schemas(
        AlertResponse,
        AlertPage,
        AlertStatusFilter,
        AlertStatus,
        OrderStatus,
        PurchaseOrderCreate,
        OrderLineRequest,
        PurchaseOrderResponse,
        PurchaseOrderSummary,
        PurchaseOrderPage,
        OrderLineResponse,
        OrderEventResponse,
        OrderSupplier,
        Amount,
        StorePayload,
        BomItem,
        StoreSync,
        ReceiveOrderRequest,
        ReceiveLineRequest
    ))
)]
pub struct PurchaseOrdersApi;

/// Registers the routes (inside `/api/v1`). `.../inventory/alerts` must come before the
/// inventory's `/{item_id}` routes, which would take `alerts` for an item's id.
pub fn routes(cfg: &mut web::ServiceConfig) {
    const BASE: &str = "/makerspaces/{makerspace_id}/purchase-orders";
    let path = |rest: &str| format!("{BASE}{rest}");
    cfg.route("/makerspaces/{makerspace_id}/inventory/alerts", web::get().to(alerts))
        .service(web::resource(path("")).route(web::post().to(create)).route(web::get().to(list)))
        .route(&path("/{po_id}"), web::get().to(get))
        .route(&path("/{po_id}/order"), web::post().to(order))
        .route(&path("/{po_id}/cancel"), web::post().to(cancel))
        .route(&path("/{po_id}/receive"), web::post().to(receive));
}

/// Which alerts to list.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AlertStatusFilter {
    /// Open and ordered: the items low now.
    Live,
    Open,
    Ordered,
    Closed,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AlertQuery {
    /// [default: live]
    pub status: Option<AlertStatusFilter>,
    /// From 1.
    #[param(minimum = 1, maximum = 9_223_372_036_854_775_807_i64)]
    pub page: Option<i64>,
    /// 1 to 200 [default: 50].
    #[param(minimum = 1, maximum = 200)]
    pub page_size: Option<i64>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct OrderQuery {
    /// Only orders in this status [default: all].
    pub status: Option<OrderStatus>,
    /// From 1.
    #[param(minimum = 1, maximum = 9_223_372_036_854_775_807_i64)]
    pub page: Option<i64>,
    /// 1 to 200 [default: 50].
    #[param(minimum = 1, maximum = 200)]
    pub page_size: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AlertPage {
    /// Newest first.
    pub alerts: Vec<AlertResponse>,
    #[serde(flatten)]
    pub page: PageInfo,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PurchaseOrderPage {
    /// Newest first.
    pub purchase_orders: Vec<PurchaseOrderSummary>,
    #[serde(flatten)]
    pub page: PageInfo,
}

#[utoipa::path(get, path = "/api/v1/makerspaces/{makerspace_id}/inventory/alerts", tag = "inventory",
    params(("makerspace_id" = String, Path), AlertQuery),
    responses((status = 200, body = AlertPage), (status = 403, body = crate::web::ErrorBody),
              (status = 404, body = crate::web::ErrorBody), (status = 422, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn alerts(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<String>,
    query: web::Query<AlertQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = Page::of(query.page, query.page_size)?;
    let filter = match query.status.unwrap_or(AlertStatusFilter::Live) {
        AlertStatusFilter::Live => AlertFilter::Live,
        AlertStatusFilter::Open => AlertFilter::Only(AlertStatus::Open),
        AlertStatusFilter::Ordered => AlertFilter::Only(AlertStatus::Ordered),
        AlertStatusFilter::Closed => AlertFilter::Only(AlertStatus::Closed),
    };
    let (alerts, total) =
        reorders::list_alerts(&state, &caller, &path.into_inner(), filter, page.limit(), page.offset()).await?;
    Ok(HttpResponse::Ok().json(AlertPage {
        alerts: alerts.into_iter().map(AlertResponse::from).collect(),
        page: PageInfo::new(page, total),
    }))
}

#[utoipa::path(post, path = "/api/v1/makerspaces/{makerspace_id}/purchase-orders", tag = "purchase-orders",
    params(("makerspace_id" = String, Path)), request_body = PurchaseOrderCreate,
    responses((status = 201, body = PurchaseOrderResponse),
              (status = 200, description = "the idempotency key was seen before: the order made then", body = PurchaseOrderResponse),
              (status = 403, body = crate::web::ErrorBody), (status = 404, body = crate::web::ErrorBody),
              (status = 409, description = "duplicate_purchase_order; alert_not_open: an alert named is ordered already or closed", body = crate::web::ErrorBody),
              (status = 422, description = "alerts and items of the space, one supplier, a quantity for an item without reorder_quantity", body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn create(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<String>,
    body: web::Json<PurchaseOrderCreate>,
) -> Result<HttpResponse, ApiError> {
    let order = purchase_orders::create(&state, &caller, &path.into_inner(), body.into_inner()).await?;
    Ok(if order.replayed { HttpResponse::Ok().json(order) } else { HttpResponse::Created().json(order) })
}

#[utoipa::path(get, path = "/api/v1/makerspaces/{makerspace_id}/purchase-orders", tag = "purchase-orders",
    params(("makerspace_id" = String, Path), OrderQuery),
    responses((status = 200, body = PurchaseOrderPage), (status = 403, body = crate::web::ErrorBody),
              (status = 404, body = crate::web::ErrorBody), (status = 422, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<String>,
    query: web::Query<OrderQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = Page::of(query.page, query.page_size)?;
    let (orders, total) =
        purchase_orders::list(&state, &caller, &path.into_inner(), query.status, page.limit(), page.offset()).await?;
    Ok(HttpResponse::Ok().json(PurchaseOrderPage { purchase_orders: orders, page: PageInfo::new(page, total) }))
}

#[utoipa::path(get, path = "/api/v1/makerspaces/{makerspace_id}/purchase-orders/{po_id}", tag = "purchase-orders",
    params(("makerspace_id" = String, Path), ("po_id" = String, Path)),
    responses((status = 200, body = PurchaseOrderResponse), (status = 403, body = crate::web::ErrorBody),
              (status = 404, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn get(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (space_id, order_id) = path.into_inner();
    Ok(HttpResponse::Ok().json(purchase_orders::get(&state, &caller, &space_id, &order_id).await?))
}

#[utoipa::path(post, path = "/api/v1/makerspaces/{makerspace_id}/purchase-orders/{po_id}/order", tag = "purchase-orders",
    params(("makerspace_id" = String, Path), ("po_id" = String, Path)),
    responses((status = 200, description = "ordered; an order to the MakrX Store was sent when a Store is configured (store_sync says whether it arrived)", body = PurchaseOrderResponse),
              (status = 403, body = crate::web::ErrorBody), (status = 404, body = crate::web::ErrorBody),
              (status = 409, description = "invalid_status: only a draft is ordered (or an ordered order whose send to the Store failed, sent again)", body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn order(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (space_id, order_id) = path.into_inner();
    Ok(HttpResponse::Ok().json(purchase_orders::order(&state, &caller, &space_id, &order_id).await?))
}

#[utoipa::path(post, path = "/api/v1/makerspaces/{makerspace_id}/purchase-orders/{po_id}/cancel", tag = "purchase-orders",
    params(("makerspace_id" = String, Path), ("po_id" = String, Path)),
    responses((status = 200, body = PurchaseOrderResponse), (status = 403, body = crate::web::ErrorBody),
              (status = 404, body = crate::web::ErrorBody),
              (status = 409, description = "invalid_status: only a draft or an ordered order is cancelled; purchase_order_busy: a receipt is being written", body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn cancel(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (space_id, order_id) = path.into_inner();
    Ok(HttpResponse::Ok().json(purchase_orders::cancel(&state, &caller, &space_id, &order_id).await?))
}

#[utoipa::path(post, path = "/api/v1/makerspaces/{makerspace_id}/purchase-orders/{po_id}/receive", tag = "purchase-orders",
    params(("makerspace_id" = String, Path), ("po_id" = String, Path)), request_body = ReceiveOrderRequest,
    responses((status = 200, description = "received: the stock rows are written (replayed: the key was seen before)", body = PurchaseOrderResponse),
              (status = 403, body = crate::web::ErrorBody), (status = 404, body = crate::web::ErrorBody),
              (status = 409, description = "invalid_status: only an ordered or partially received order is received; over_receipt: more than a line's outstanding quantity; purchase_order_busy: another receipt is being written", body = crate::web::ErrorBody),
              (status = 422, description = "lines of this order, each once; an item still in the inventory", body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn receive(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<(String, String)>,
    body: web::Json<ReceiveOrderRequest>,
) -> Result<HttpResponse, ApiError> {
    let (space_id, order_id) = path.into_inner();
    let order = purchase_receipts::receive(&state, &caller, &space_id, &order_id, body.into_inner()).await?;
    Ok(HttpResponse::Ok().json(order))
}
