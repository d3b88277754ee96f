//! `/api/v1/makerspaces/{id}/inventory`: what a makerspace stocks, and its stock log, over
//! HTTP. Items are [`crate::services::inventory`]'s, stock moves [`crate::services::stock`]'s.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};

use crate::domain::inventory::Category;
use crate::services::inventory::{self, Filament, ItemCreate, ItemResponse, ItemUpdate, Supplier, UnitCost};
use crate::services::stock::{
    self, AdjustRequest, DeductReason, DeductRequest, ReceiveReason, ReceiveRequest, StockResponse, UsageResponse,
};
use crate::store::inventory::{ItemQuery, ItemSort};
use crate::web::auth::Caller;
use crate::web::error::ApiError;
use crate::web::paging::{search_text, sort_key, Page, PageInfo};
use crate::web::AppState;

#[derive(OpenApi)]
#[openapi(
    paths(create, list, get, update, delete, deduct, receive, adjust, usage),
    components(schemas(
        ItemCreate,
        ItemUpdate,
        ItemResponse,
        ItemPage,
        Supplier,
        Filament,
        UnitCost,
        DeductRequest,
        ReceiveRequest,
        AdjustRequest,
        StockResponse,
        UsageResponse,
        UsagePage,
        ItemSortKey,
        SupplierKind,
        DeductReason,
        ReceiveReason
    ))
)]
pub struct InventoryApi;

/// Registers the routes (inside `/api/v1`).
pub fn routes(cfg: &mut web::ServiceConfig) {
    const BASE: &str = "/makerspaces/{makerspace_id}/inventory";
    let path = |rest: &str| format!("{BASE}{rest}");
    cfg.service(web::resource(path("")).route(web::post().to(create)).route(web::get().to(list)))
        .service(
            web::resource(path("/{item_id}"))
                .route(web::get().to(get))
                .route(web::put().to(update))
                .route(web::delete().to(delete)),
        )
        .route(&path("/{item_id}/deduct"), web::post().to(deduct))
        .route(&path("/{item_id}/receive"), web::post().to(receive))
        .route(&path("/{item_id}/adjust"), web::post().to(adjust))
        .route(&path("/{item_id}/usage"), web::get().to(usage));
}

/// Who supplies an item.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SupplierKind {
    MakrxStore,
    External,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ItemListQuery {
    /// Part of the name, the SKU, the supplier's name or the material, any case.
    #[param(max_length = 200)]
    pub search: Option<String>,
    pub category: Option<Category>,
    pub supplier_kind: Option<SupplierKind>,
    /// true: only items at or below their minimum; false: only the others.
    pub low_stock: Option<bool>,
    #[param(min_length = 1, max_length = 200)]
    pub location: Option<String>,
    /// name, category, current_stock, created_at or updated_at; `-` in front for descending.
    #[param(inline, value_type = Option<ItemSortKey>)]
    pub sort: Option<String>,
    /// From 1.
    #[param(minimum = 1, maximum = 9_223_372_036_854_775_807_i64)]
    pub page: Option<i64>,
    /// 1 to 200 [default: 50].
    #[param(minimum = 1, maximum = 200)]
    pub page_size: Option<i64>,
}

/// The sort keys of an item listing (`-` in front: descending), for the document.
#[derive(ToSchema)]
#[allow(dead_code)]
pub enum ItemSortKey {
    #[schema(rename = "name")]
    Name,
    #[schema(rename = "-name")]
    NameDesc,
    #[schema(rename = "category")]
    Category,
    #[schema(rename = "-category")]
    CategoryDesc,
    #[schema(rename = "current_stock")]
    CurrentStock,
    #[schema(rename = "-current_stock")]
    CurrentStockDesc,
    #[schema(rename = "created_at")]
    CreatedAt,
    #[schema(rename = "-created_at")]
    CreatedAtDesc,
    #[schema(rename = "updated_at")]
    UpdatedAt,
    #[schema(rename = "-updated_at")]
    UpdatedAtDesc,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ItemPage {
    pub items: Vec<ItemResponse>,
    #[serde(flatten)]
    pub page: PageInfo,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UsagePage {
    /// Newest first.
    pub usage: Vec<UsageResponse>,
    #[serde(flatten)]
    pub page: PageInfo,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct UsageQuery {
    /// From 1.
    #[param(minimum = 1, maximum = 9_223_372_036_854_775_807_i64)]
    pub page: Option<i64>,
    /// 1 to 200 [default: 50].
    #[param(minimum = 1, maximum = 200)]
    pub page_size: Option<i64>,
}

#[utoipa::path(post, path = "/api/v1/makerspaces/{makerspace_id}/inventory", tag = "inventory",
    params(("makerspace_id" = String, Path)), request_body = ItemCreate,
    responses((status = 201, body = ItemResponse), (status = 403, body = crate::web::ErrorBody),
              (status = 404, body = crate::web::ErrorBody), (status = 409, body = crate::web::ErrorBody),
              (status = 422, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn create(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<String>,
    body: web::Json<ItemCreate>,
) -> Result<HttpResponse, ApiError> {
    let (item, currency) = inventory::create(&state, &caller, &path.into_inner(), body.into_inner()).await?;
    Ok(HttpResponse::Created().json(ItemResponse::new(item, &currency)))
}

#[utoipa::path(get, path = "/api/v1/makerspaces/{makerspace_id}/inventory", tag = "inventory",
    params(("makerspace_id" = String, Path), ItemListQuery),
    responses((status = 200, body = ItemPage), (status = 403, body = crate::web::ErrorBody),
              (status = 404, body = crate::web::ErrorBody), (status = 422, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<String>,
    query: web::Query<ItemListQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = query.into_inner();
    let (sort, descending) = sort_key(q.sort.as_deref(), ItemSort::Name, ItemSort::parse)?;
    let page = Page::of(q.page, q.page_size)?;
    let query = ItemQuery {
        search: search_text(q.search)?,
        category: q.category,
        supplier_kind: q.supplier_kind.map(|k| match k {
            SupplierKind::MakrxStore => "makrx_store".to_string(),
            SupplierKind::External => "external".to_string(),
        }),
        low_stock: q.low_stock,
        location: match q.location {
            Some(l) if l.is_empty() || l.chars().count() > 200 => {
                return Err(ApiError::Validation("location is 1 to 200 characters".into()))
            }
            l => l,
        },
        sort,
        descending,
        limit: page.limit(),
        offset: page.offset(),
    };
    let (items, total, currency) = inventory::list(&state, &caller, &path.into_inner(), &query).await?;
    Ok(HttpResponse::Ok().json(ItemPage {
        items: items.into_iter().map(|i| ItemResponse::new(i, &currency)).collect(),
        page: PageInfo::new(page, total),
    }))
}

#[utoipa::path(get, path = "/api/v1/makerspaces/{makerspace_id}/inventory/{item_id}", tag = "inventory",
    params(("makerspace_id" = String, Path), ("item_id" = String, Path)),
    responses((status = 200, body = ItemResponse), (status = 403, body = crate::web::ErrorBody),
              (status = 404, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn get(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (space_id, item_id) = path.into_inner();
    let (item, currency) = inventory::load(&state, &caller, &space_id, &item_id, false).await?;
    Ok(HttpResponse::Ok().json(ItemResponse::new(item, &currency)))
}

#[utoipa::path(put, path = "/api/v1/makerspaces/{makerspace_id}/inventory/{item_id}", tag = "inventory",
    params(("makerspace_id" = String, Path), ("item_id" = String, Path)), request_body = ItemUpdate,
    responses((status = 200, body = ItemResponse), (status = 403, body = crate::web::ErrorBody),
              (status = 404, body = crate::web::ErrorBody), (status = 422, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn update(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<(String, String)>,
    body: web::Json<ItemUpdate>,
) -> Result<HttpResponse, ApiError> {
    let (space_id, item_id) = path.into_inner();
    let (item, currency) = inventory::update(&state, &caller, &space_id, &item_id, body.into_inner()).await?;
    Ok(HttpResponse::Ok().json(ItemResponse::new(item, &currency)))
}

#[utoipa::path(delete, path = "/api/v1/makerspaces/{makerspace_id}/inventory/{item_id}", tag = "inventory",
    params(("makerspace_id" = String, Path), ("item_id" = String, Path)),
    responses((status = 204), (status = 403, body = crate::web::ErrorBody), (status = 404, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (space_id, item_id) = path.into_inner();
    inventory::delete(&state, &caller, &space_id, &item_id).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(post, path = "/api/v1/makerspaces/{makerspace_id}/inventory/{item_id}/deduct", tag = "inventory",
    params(("makerspace_id" = String, Path), ("item_id" = String, Path)), request_body = DeductRequest,
    responses((status = 200, body = StockResponse),
              (status = 400, description = "insufficient_stock: the item holds less than asked (current_stock, requested)", body = crate::web::ErrorBody),
              (status = 403, body = crate::web::ErrorBody), (status = 404, body = crate::web::ErrorBody),
              (status = 422, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn deduct(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<(String, String)>,
    body: web::Json<DeductRequest>,
) -> Result<HttpResponse, ApiError> {
    let (space_id, item_id) = path.into_inner();
    let moved = stock::deduct(&state, &caller, &space_id, &item_id, body.into_inner()).await?;
    Ok(HttpResponse::Ok().json(StockResponse::from(moved)))
}

#[utoipa::path(post, path = "/api/v1/makerspaces/{makerspace_id}/inventory/{item_id}/receive", tag = "inventory",
    params(("makerspace_id" = String, Path), ("item_id" = String, Path)), request_body = ReceiveRequest,
    responses((status = 200, body = StockResponse), (status = 403, body = crate::web::ErrorBody),
              (status = 404, body = crate::web::ErrorBody), (status = 422, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn receive(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<(String, String)>,
    body: web::Json<ReceiveRequest>,
) -> Result<HttpResponse, ApiError> {
    let (space_id, item_id) = path.into_inner();
    let moved = stock::receive(&state, &caller, &space_id, &item_id, body.into_inner()).await?;
    Ok(HttpResponse::Ok().json(StockResponse::from(moved)))
}

#[utoipa::path(post, path = "/api/v1/makerspaces/{makerspace_id}/inventory/{item_id}/adjust", tag = "inventory",
    params(("makerspace_id" = String, Path), ("item_id" = String, Path)), request_body = AdjustRequest,
    responses((status = 200, body = StockResponse), (status = 403, body = crate::web::ErrorBody),
              (status = 404, body = crate::web::ErrorBody), (status = 422, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn adjust(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<(String, String)>,
    body: web::Json<AdjustRequest>,
) -> Result<HttpResponse, ApiError> {
    let (space_id, item_id) = path.into_inner();
    let moved = stock::adjust(&state, &caller, &space_id, &item_id, body.into_inner()).await?;
    Ok(HttpResponse::Ok().json(StockResponse::from(moved)))
}

#[utoipa::path(get, path = "/api/v1/makerspaces/{makerspace_id}/inventory/{item_id}/usage", tag = "inventory",
    params(("makerspace_id" = String, Path), ("item_id" = String, Path), UsageQuery),
    responses((status = 200, body = UsagePage), (status = 403, body = crate::web::ErrorBody),
              (status = 404, body = crate::web::ErrorBody), (status = 422, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn usage(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<(String, String)>,
    query: web::Query<UsageQuery>,
) -> Result<HttpResponse, ApiError> {
    let (space_id, item_id) = path.into_inner();
    let page = Page::of(query.page, query.page_size)?;
    let (rows, total) = stock::usage(&state, &caller, &space_id, &item_id, page.limit(), page.offset()).await?;
    Ok(HttpResponse::Ok().json(UsagePage {
        usage: rows.into_iter().map(UsageResponse::from).collect(),
        page: PageInfo::new(page, total),
    }))
}
