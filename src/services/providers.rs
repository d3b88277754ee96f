//! Makerspaces in service-provider mode: which they are, what they can make and how much of it
//! right now (`GET /api/v1/providers/available`), and the candidates a service order is
//! offered to ([`candidates`], judged by `crate::domain::providers`). Machines are judged by
//! their records and their live state in the fleet, as the job router judges them.

use std::collections::HashMap;

use serde::Serialize;
use utoipa::ToSchema;

use crate::actors::router::facts_of;
use crate::domain::access::{Decision, Principal};
use crate::domain::equipment::EquipmentType;
use crate::domain::providers::{capacity, location_matches, Candidate, Capacity, ProviderSettings, ServiceType};
use crate::domain::routing::MachineFacts;
use crate::store::equipment::EquipmentFilter;
use crate::store::makerspaces::MakerspaceRecord;
use crate::store::StoreError;

use super::Services;

#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("{0}")]
    Forbidden(&'static str),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The largest `capacity` asked for: more free machines than any farm has.
pub const MAX_CAPACITY: u32 = 100_000;

/// What `GET /providers/available` filters by.
#[derive(Debug, Clone, Default)]
pub struct AvailableQuery {
    pub service_type: Option<ServiceType>,
    /// Part of the makerspace's location, whatever the case.
    pub location: Option<String>,
    /// At least this many free machines (of `service_type`, or of all its services).
    pub capacity: Option<u32>,
}

/// What a provider can make now, for one service type.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ServiceCapacity {
    pub service_type: ServiceType,
    pub equipment_type: EquipmentType,
    #[serde(flatten)]
    pub capacity: Capacity,
    /// Jobs of that machine type waiting in the space's queue.
    pub queued_jobs: i64,
}

/// A provider makerspace as the services see it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProviderView {
    pub id: String,
    pub name: String,
    pub location: Option<String>,
    pub service_types: Vec<ServiceType>,
    /// How long it has to answer an offer [seconds].
    pub accept_timeout_s: u64,
    pub capacity: Vec<ServiceCapacity>,
}

/// The answer of `GET /providers/available`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProviderList {
    pub providers: Vec<ProviderView>,
}

/// Every makerspace in provider mode, with its settings. A space whose provider settings do
/// not read (written before they were checked) is left out, and said so in the log.
pub async fn provider_spaces(svc: &Services) -> Result<Vec<(MakerspaceRecord, ProviderSettings)>, StoreError> {
    let mut providers = Vec::new();
    for space in svc.store.list_makerspaces().await? {
        match ProviderSettings::from_settings(&space.settings) {
            Ok(Some(settings)) if settings.enabled => providers.push((space, settings)),
            Ok(_) => {}
            Err(e) => tracing::warn!(makerspace_id = %space.id, error = %e, "provider settings ignored"),
        }
    }
    Ok(providers)
}

/// A makerspace's machines with their live state (a machine without an actor is not in the
/// fleet and makes nothing).
pub async fn machines_of(svc: &Services, space_id: &str) -> Result<Vec<MachineFacts>, StoreError> {
    let filter = EquipmentFilter { makerspace_id: Some(space_id.to_string()), kind: None };
    let records = svc.store.list_equipment(&filter).await?;
    let views: HashMap<String, _> =
        svc.fleet.views(space_id, None).await.into_iter().map(|v| (v.equipment_id.clone(), v)).collect();
    Ok(records.iter().filter_map(|r| views.get(&r.id).map(|view| facts_of(r, view, Vec::new()))).collect())
}

/// Every provider as a candidate for a service order.
pub async fn candidates(svc: &Services) -> Result<Vec<Candidate>, StoreError> {
    let mut out = Vec::new();
    for (space, settings) in provider_spaces(svc).await? {
        let machines = machines_of(svc, &space.id).await?;
        out.push(Candidate { makerspace_id: space.id, location: space.location, settings, machines });
    }
    Ok(out)
}

/// The providers, what each can make and how much of it now, filtered by `query`: for the
/// services and the platform's admins.
pub async fn available(
    svc: &Services,
    caller: &Principal,
    query: &AvailableQuery,
) -> Result<ProviderList, ProviderError> {
    if caller.can_read_services() != Decision::Allow {
        return Err(ProviderError::Forbidden("only services and the platform's admins read the providers"));
    }
    let mut providers = Vec::new();
    for (space, settings) in provider_spaces(svc).await? {
        if query.service_type.is_some_and(|service| !settings.offers(service)) {
            continue;
        }
        if let Some(asked) = &query.location {
            if !location_matches(asked, space.location.as_deref()) {
                continue;
            }
        }
        let machines = machines_of(svc, &space.id).await?;
        let queued: HashMap<EquipmentType, i64> = svc.store.queued_jobs_by_type(&space.id).await?.into_iter().collect();
        let capacities: Vec<ServiceCapacity> = settings
            .service_types
            .iter()
            .map(|&service| {
                let equipment_type = service.equipment_type();
                ServiceCapacity {
                    service_type: service,
                    equipment_type,
                    capacity: capacity(&machines, equipment_type),
                    queued_jobs: queued.get(&equipment_type).copied().unwrap_or(0),
                }
            })
            .collect();
        let free: usize = capacities
            .iter()
            .filter(|c| query.service_type.is_none_or(|asked| asked == c.service_type))
            .map(|c| c.capacity.idle)
            .sum();
        if query.capacity.is_some_and(|wanted| free < wanted as usize) {
            continue;
        }
        providers.push(ProviderView {
            id: space.id,
            name: space.name,
            location: space.location,
            service_types: settings.service_types,
            accept_timeout_s: settings.accept_timeout_s,
            capacity: capacities,
        });
    }
    Ok(ProviderList { providers })
}
