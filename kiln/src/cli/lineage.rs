//! `kiln lineage URI`: which run, which inputs and which parameters produced an artifact, back
//! to the first inputs, from the run store's ML Metadata records.

use std::path::PathBuf;

use kiln_pipelines::lineage::Lineage;

use super::CliError;
use super::pipeline::{Format, chain, open_store, print};

/// Show where an artifact came from.
#[derive(Debug, clap::Args)]
pub(crate) struct LineageArgs {
    /// The artifact's URI (`file://...` or a path), as `kiln pipeline get` shows it.
    uri: String,
    /// Print the whole tree as YAML or JSON.
    #[arg(short = 'o', long)]
    output: Option<Format>,
    /// Where the run store is.
    #[arg(long, env = "KILN_STATE_DIR")]
    state_dir: Option<PathBuf>,
}

impl LineageArgs {
    pub(crate) async fn run(self) -> Result<(), CliError> {
        let (_, store) = open_store(self.state_dir)?;
        let lineage = store
            .lineage(&self.uri)
            .map_err(|e| CliError::Failed(chain(&e)))?
            .ok_or_else(|| {
                CliError::Invalid(format!(
                    "no pipeline run recorded an artifact at {}",
                    self.uri
                ))
            })?;
        if let Some(format) = self.output {
            return print(&lineage, format);
        }
        let mut out = String::new();
        tree(&lineage, 0, &mut out);
        print!("{out}");
        Ok(())
    }
}

fn tree(node: &Lineage, depth: usize, out: &mut String) {
    let pad = "  ".repeat(depth);
    let digest = if node.digest.is_empty() {
        "no digest"
    } else {
        &node.digest
    };
    out.push_str(&format!("{} ({}, {digest})\n", node.uri, node.type_name));
    match &node.produced_by {
        None => out.push_str(&format!(
            "{pad}  a first input: no recorded run produced it\n"
        )),
        Some(p) => {
            let how = if p.state == "CACHED" {
                ", served from the cache"
            } else {
                ""
            };
            out.push_str(&format!(
                "{pad}  produced by task {} of run {} (pipeline {}){how}\n",
                p.task, p.run_id, p.pipeline
            ));
            if let Some(image) = &p.image {
                out.push_str(&format!("{pad}  image {image}\n"));
            }
            if p.parameters.as_object().is_some_and(|m| !m.is_empty()) {
                out.push_str(&format!("{pad}  parameters {}\n", p.parameters));
            }
            for (name, input) in &p.inputs {
                out.push_str(&format!("{pad}  input {name}: "));
                tree(input, depth + 2, out);
            }
        }
    }
}
