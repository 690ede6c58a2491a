//! What a resource's open-metadata document needs, read from the views: its record and
//! timeline, one step of lineage each way, its design and fork ancestry with their licences, its
//! active footprint version, and the names the events give to the parties they mention
//! ([`gather`]). `stigmergy_domain::views::document` turns an [`Item`] into JSON-LD; the gateway
//! serves it at `/id/{id}`, the projectors publish it on `stigmergy.metadata.v1`, and
//! `stigmergy export` writes it to files.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use stigmergy_domain::views::document::{self, DesignSummary, FootprintIssue, Inputs};
use stigmergy_domain::views::{Direction, Kind, Record, Role};
use stigmergy_domain::{Event, Iri, Licence};

use crate::{FootprintStatus, Result, ViewStore};

/// How many forks up the ancestry of a design a document follows.
const MAX_ANCESTRY: usize = 32;

/// Everything the document and the page of one resource show, read from the views.
#[derive(Clone, Debug)]
pub struct Item {
    pub id: Iri,
    pub record: Record,
    pub history: Vec<(Event, Role)>,
    pub upstream: Vec<(Iri, Option<String>)>,
    pub downstream: Vec<(Iri, Option<String>)>,
    pub design: Option<DesignSummary>,
    pub licence: Option<Licence>,
    pub ancestry: Vec<DesignSummary>,
    pub footprint: Option<FootprintIssue>,
    pub names: BTreeMap<Iri, String>,
    pub as_of: u64,
}

impl Item {
    /// Its JSON-LD document, with links below `base`.
    pub fn document(&self, base: &str) -> Value {
        document::document(&Inputs {
            base,
            id: &self.id,
            record: &self.record,
            history: &self.history,
            upstream: &self.upstream,
            downstream: &self.downstream,
            design: self.design.as_ref(),
            licence: self.licence.as_ref(),
            ancestry: &self.ancestry,
            footprint: self.footprint.as_ref(),
            names: &self.names,
            as_of: self.as_of,
        })
    }

    /// The event that retracted its creation, when it was.
    pub fn retraction(&self) -> Option<&Event> {
        document::retraction(&self.record, &self.history)
    }
}

/// Reads what the document of `id` needs; `None` when no event mentions it. `names` knows the
/// organisations (the directory); contributors' and suppliers' names come from the events.
pub async fn gather(
    views: &dyn ViewStore,
    names_of: &(dyn Fn(&Iri) -> Option<String> + Sync),
    as_of: u64,
    id: &Iri,
) -> Result<Option<Item>> {
    let Some(record) = views.record(id).await? else {
        return Ok(None);
    };
    let history: Vec<(Event, Role)> = views
        .timeline(id)
        .await?
        .into_iter()
        .map(|entry| (entry.event, entry.role))
        .collect();
    let mut names = BTreeMap::new();
    for (event, _) in &history {
        collect_names(event, &mut names);
    }
    let upstream = neighbours(views, id, Direction::Upstream).await?;
    let downstream = neighbours(views, id, Direction::Downstream).await?;
    // The suppliers of its inputs are named in the events that created them.
    for (input, _) in &upstream {
        for entry in views.timeline(input).await? {
            if entry.role == Role::Created {
                collect_names(&entry.event, &mut names);
            }
        }
    }

    // A batch's design, or a fork's parent; then the parents of that, up the fork tree. For a
    // design, its ancestry starts at its parent; for a batch, at its design's parent.
    let mut ancestry = Vec::new();
    let mut seen = BTreeSet::from([id.clone()]);
    let design = match &record.design {
        Some(design) => {
            let (summary, parent) = design_summary(views, design, &mut names).await?;
            seen.insert(design.clone());
            let mut next = parent;
            if record.kind == Kind::Design {
                ancestry.push(summary.clone());
            }
            while let Some(parent) = next.take() {
                if ancestry.len() >= MAX_ANCESTRY || !seen.insert(parent.clone()) {
                    break;
                }
                let (summary, grandparent) = design_summary(views, &parent, &mut names).await?;
                ancestry.push(summary);
                next = grandparent;
            }
            Some(summary)
        }
        None => None,
    };
    let licence = if record.kind == Kind::Design {
        licence_in(&history)
    } else {
        None
    };
    let footprint = current_footprint(views, id).await?;
    for organization in history
        .iter()
        .map(|(event, _)| &event.recorded_by)
        .chain(record.created_by.as_ref())
    {
        if let Some(name) = names_of(organization) {
            names.insert(organization.clone(), name);
        }
    }
    if let Some(attribution) = &record.attribution {
        for (agent, _) in attribution.ranked() {
            if !names.contains_key(&agent)
                && let Some(name) = names_of(&agent)
            {
                names.insert(agent, name);
            }
        }
    }
    Ok(Some(Item {
        id: id.clone(),
        record,
        history,
        upstream,
        downstream,
        design,
        licence,
        ancestry,
        footprint,
        names,
        as_of,
    }))
}

/// The resources one step up or down from `id`, with their names.
async fn neighbours(
    views: &dyn ViewStore,
    id: &Iri,
    direction: Direction,
) -> Result<Vec<(Iri, Option<String>)>> {
    let lineage = views.lineage(id, direction, 1).await?;
    let ids: Vec<Iri> = lineage
        .nodes
        .into_iter()
        .filter(|(_, depth)| *depth == 1)
        .map(|(node, _)| node)
        .collect();
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let records: BTreeMap<Iri, Record> = views.records(&ids).await?.into_iter().collect();
    Ok(ids
        .into_iter()
        .map(|node| {
            let name = records.get(&node).and_then(|r| r.name.clone());
            (node, name)
        })
        .collect())
}

/// A design as a document shows it, and the design it was forked from.
async fn design_summary(
    views: &dyn ViewStore,
    design: &Iri,
    names: &mut BTreeMap<Iri, String>,
) -> Result<(DesignSummary, Option<Iri>)> {
    let record = views.record(design).await?;
    let timeline = views.timeline(design).await?;
    let history: Vec<(Event, Role)> = timeline
        .into_iter()
        .map(|entry| (entry.event, entry.role))
        .collect();
    for (event, role) in &history {
        if *role == Role::ContributedTo || *role == Role::Created {
            collect_names(event, names);
        }
    }
    let (name, parent) = record.map_or((None, None), |r| (r.name, r.design));
    Ok((
        DesignSummary {
            id: design.clone(),
            name,
            licence: licence_in(&history),
        },
        parent,
    ))
}

/// The licence of the design whose history this is (from the event that created it).
fn licence_in(history: &[(Event, Role)]) -> Option<Licence> {
    history
        .iter()
        .filter(|(_, role)| *role == Role::Created)
        .find_map(|(event, _)| event.payload.design_release())
        .map(|release| release.licence.clone())
}

/// The active footprint version of `id`, with the ids of those it replaced, latest first.
async fn current_footprint(views: &dyn ViewStore, id: &Iri) -> Result<Option<FootprintIssue>> {
    let versions = views.footprint_versions(id).await?;
    let Some(current) = versions
        .iter()
        .rev()
        .find(|version| version.status == FootprintStatus::Active)
    else {
        return Ok(None);
    };
    let preceding = versions
        .iter()
        .rev()
        .filter(|version| version.version < current.version)
        .map(|version| version.id)
        .collect();
    Ok(Some(FootprintIssue {
        id: current.id,
        version: current.version,
        preceding,
    }))
}

/// The names events give to the parties they mention (`{"id": …, "name": …}` anywhere in a
/// payload: contributors, suppliers).
fn collect_names(event: &Event, names: &mut BTreeMap<Iri, String>) {
    fn walk(value: &Value, names: &mut BTreeMap<Iri, String>) {
        match value {
            Value::Object(map) => {
                if let (Some(Value::String(id)), Some(Value::String(name))) =
                    (map.get("id"), map.get("name"))
                    && let Ok(iri) = Iri::parse(id.as_str())
                {
                    names.entry(iri).or_insert_with(|| name.clone());
                }
                map.values().for_each(|v| walk(v, names));
            }
            Value::Array(items) => items.iter().for_each(|v| walk(v, names)),
            _ => {}
        }
    }
    if let Ok(payload) = serde_json::to_value(&event.payload) {
        walk(&payload, names);
    }
}
