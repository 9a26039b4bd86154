//! `portsim schema report|sweep|capacity|seeds`: the JSON Schema (draft
//! 2020-12) of `report.json`, `sweep.json`, `capacity.json` or what
//! `run --seeds N --json` prints, on stdout.
//!
//! Each schema is derived by schemars from the Rust type that serializes
//! the file ([`crate::Report`], [`crate::sweep::output::SweepReport`],
//! [`crate::sweep::capacity::Capacity`], [`crate::sweep::seeds::SeedsReport`]),
//! so it changes with the type. It
//! describes what portsim *writes* (schemars' serialize contract): every
//! field it always writes is required, `null` where the type is an
//! `Option`, and only fields it may leave out are optional.

use schemars::generate::SchemaSettings;
use schemars::JsonSchema;

use super::{print_out, Exit};

/// Which file's schema.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Document {
    /// report.json (`run --json`, `run --out`).
    Report,
    /// sweep.json (`sweep --json`, `sweep --out`, `merge`).
    Sweep,
    /// capacity.json (`capacity --json`, `capacity --out`).
    Capacity,
    /// What `run --seeds N --json` prints.
    Seeds,
}

#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  portsim schema report > report.schema.json
  portsim schema sweep
  portsim schema capacity
  portsim schema seeds")]
pub(crate) struct SchemaArgs {
    /// The file to describe.
    #[arg(value_enum)]
    document: Document,
}

pub(crate) fn exec(args: SchemaArgs) -> anyhow::Result<Exit> {
    print_out(&schema(args.document));
    Ok(Exit::Done)
}

/// The schema of `doc` as pretty-printed JSON, with a final newline.
pub fn schema(doc: Document) -> String {
    let value = match doc {
        Document::Report => of::<crate::Report>("report.json"),
        Document::Sweep => of::<crate::sweep::output::SweepReport>("sweep.json"),
        Document::Capacity => of::<crate::sweep::capacity::Capacity>("capacity.json"),
        Document::Seeds => of::<crate::sweep::seeds::SeedsReport>("run --seeds N --json"),
    };
    let mut s = serde_json::to_string_pretty(&value).expect("a schema serializes");
    s.push('\n');
    s
}

fn of<T: JsonSchema>(file: &str) -> serde_json::Value {
    let generator = SchemaSettings::draft2020_12()
        .for_serialize()
        .into_generator();
    let mut schema = generator.into_root_schema_for::<T>();
    schema.insert(
        "description".into(),
        format!(
            "{file} as written by portsim {}; see `portsim schema`.",
            env!("CARGO_PKG_VERSION")
        )
        .into(),
    );
    schema.to_value()
}
