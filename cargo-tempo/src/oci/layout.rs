//! The CNCF "Wasm OCI artifact" layout: the config that describes a component, the manifest
//! that holds it, and the check that a pulled manifest is one.

use std::collections::BTreeMap;

use anyhow::{anyhow, bail};
use oci_client::manifest::{OciDescriptor, OciManifest};
use serde::{Deserialize, Serialize};

/// The media type of the config of a Wasm artifact.
pub(crate) const CONFIG_MEDIA_TYPE: &str = "application/vnd.wasm.config.v0+json";
/// The media type of its one layer, the component.
pub(crate) const LAYER_MEDIA_TYPE: &str = "application/wasm";
/// The media type of the manifest.
pub(crate) const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";

/// The config of a Wasm artifact: what the component is, imports and exports.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WasmConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) created: Option<String>,
    pub(crate) architecture: String,
    pub(crate) os: String,
    pub(crate) layer_digests: Vec<String>,
    pub(crate) component: Option<ComponentWorld>,
}

/// A component's imports and exports, by interface name.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ComponentWorld {
    pub(crate) exports: Vec<String>,
    pub(crate) imports: Vec<String>,
    pub(crate) target: Option<String>,
}

impl WasmConfig {
    /// The config of the component `bytes` whose digest is `digest`.
    pub(crate) fn describe(bytes: &[u8], digest: &str, created: String) -> anyhow::Result<Self> {
        let (imports, exports) = world_of(bytes)?;
        Ok(Self {
            created: Some(created),
            architecture: "wasm".to_owned(),
            os: "wasip2".to_owned(),
            layer_digests: vec![digest.to_owned()],
            component: Some(ComponentWorld {
                exports,
                imports,
                target: None,
            }),
        })
    }
}

/// The manifest of an artifact with `config` (its bytes and digest) and `layer`, annotated.
pub(crate) fn manifest(
    config: (&[u8], &str),
    layer: (&[u8], &str),
    annotations: &BTreeMap<String, String>,
) -> anyhow::Result<Vec<u8>> {
    let descriptor = |media_type: &str, (bytes, digest): (&[u8], &str)| serde_json::json!({ "mediaType": media_type, "digest": digest, "size": bytes.len() });
    let mut manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "config": descriptor(CONFIG_MEDIA_TYPE, config),
        "layers": [descriptor(LAYER_MEDIA_TYPE, layer)],
    });
    if !annotations.is_empty() {
        manifest["annotations"] = serde_json::to_value(annotations)?;
    }
    Ok(serde_json::to_vec(&manifest)?)
}

/// The component layer of `manifest`, if it is a Wasm artifact; otherwise an error naming what
/// it is instead (a container image, an index, a layer of another type).
pub(crate) fn component_layer(manifest: &OciManifest) -> anyhow::Result<&OciDescriptor> {
    let image = match manifest {
        OciManifest::Image(image) => image,
        OciManifest::ImageIndex(_) => {
            bail!("it is an image index (several platforms), not a Wasm component")
        }
    };
    let config = image.config.media_type.as_str();
    if config != CONFIG_MEDIA_TYPE {
        let what = if config.contains("container.image") || config.contains("image.config") {
            "a container image"
        } else {
            "not a Wasm component"
        };
        bail!("it is {what}: its config is `{config}`, not `{CONFIG_MEDIA_TYPE}`");
    }
    match image.layers.as_slice() {
        [layer] if layer.media_type == LAYER_MEDIA_TYPE => Ok(layer),
        [layer] => Err(anyhow!(
            "its layer is `{}`, not `{LAYER_MEDIA_TYPE}`",
            layer.media_type
        )),
        layers => Err(anyhow!(
            "it has {} layers; a Wasm component has one",
            layers.len()
        )),
    }
}

/// The names of a component's top-level imports and exports.
fn world_of(bytes: &[u8]) -> anyhow::Result<(Vec<String>, Vec<String>)> {
    use wasmparser::{Encoding, Parser, Payload};
    let (mut imports, mut exports) = (Vec::new(), Vec::new());
    // Nested modules and components each start with a header and end with `End`.
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(bytes) {
        match payload? {
            Payload::Version { encoding, .. } => {
                if depth == 0 && encoding != Encoding::Component {
                    bail!("it is a core WebAssembly module, not a component");
                }
                depth += 1;
            }
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentImportSection(section) if depth == 1 => {
                for import in section {
                    imports.push(import?.name.name.to_owned());
                }
            }
            Payload::ComponentExportSection(section) if depth == 1 => {
                for export in section {
                    exports.push(export?.name.name.to_owned());
                }
            }
            _ => {}
        }
    }
    Ok((imports, exports))
}
