//! Loading a component file and detecting which WASI HTTP world it serves.
//!
//! Anything that is not a servable component (a missing file, a file that is
//! not wasm, a core module, a component without an HTTP handler, imports the
//! host does not provide) is refused here, before any socket is opened, with
//! a [`LoadError`] that names the file and says what to do. The component's
//! `reprise:reuse-policy` section is read here too, before anything is
//! compiled, so a malformed one stops start-up the same way. This module does
//! not instantiate the component and does not apply the policy
//! (`instance/config.rs` does).

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use wasmtime::Engine;
use wasmtime::component::Component;
use wasmtime_wasi_http::handler::ProxyPre;
use wasmtime_wasi_http::p2::bindings::ProxyPre as P2ProxyPre;
use wasmtime_wasi_http::p3::bindings::ServicePre;

pub(crate) mod engine;
pub mod policy;

pub use engine::Allocator;

use crate::errors::one_line;
use crate::files::{self, FileErrorKind};
use crate::host::{self, Host};
use crate::options::ServeOptions;
use crate::units::HumanSize;
use engine::PoolSizing;
use policy::{PolicyError, ReusePolicy};

/// The WASI HTTP world a component serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum World {
    /// WASI 0.2: exports `wasi:http/incoming-handler@0.2.x`; one call at a
    /// time per instance.
    P2,
    /// WASI 0.3: exports `wasi:http/handler@0.3.x`; calls may interleave.
    P3,
}

impl fmt::Display for World {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            World::P2 => "p2 (wasi:http/incoming-handler@0.2)",
            World::P3 => "p3 (wasi:http/handler@0.3)",
        })
    }
}

/// A component ready to be instantiated, with the engine it was compiled
/// for.
pub struct LoadedComponent {
    path: PathBuf,
    engine: Engine,
    allocator: Allocator,
    interruptible: bool,
    world: World,
    policy: Option<ReusePolicy>,
    initial_memory: u64,
    pre: ProxyPre<Host>,
}

impl LoadedComponent {
    /// Reads, compiles, links and classifies the component at `path`, with
    /// the default instance limits.
    ///
    /// `interruptible` compiles epoch checks into the guest; request
    /// timeouts need it to stop guests that never yield.
    pub fn load(path: &Path, interruptible: bool) -> Result<Self, LoadError> {
        let defaults = ServeOptions::default();
        Self::load_with(path, interruptible, &defaults)
    }

    /// Loads the component at `path` for serving with `options`: guest code
    /// is interruptible when requests have a timeout, and the instance
    /// allocator is sized for `options.max_instances` instances.
    pub(crate) fn load_for(path: &Path, options: &ServeOptions) -> Result<Self, LoadError> {
        Self::load_with(path, options.request_timeout().is_some(), options)
    }

    /// Loads the component at `path` as it would be served with `options`
    /// (the `-S` interfaces it may import, the instance limits);
    /// `interruptible` as for [`LoadedComponent::load`].
    pub fn load_with(
        path: &Path,
        interruptible: bool,
        options: &ServeOptions,
    ) -> Result<Self, LoadError> {
        let problem = |kind| LoadError {
            path: path.to_path_buf(),
            kind,
        };
        let bytes = read_component_file(path).map_err(problem)?;
        let policy = policy::read(&bytes).map_err(|e| problem(LoadErrorKind::Policy(e)))?;

        let sizing = PoolSizing::for_component(&bytes, options.max_instances);
        let (engine, allocator) = engine::build(interruptible, &sizing)
            .map_err(|e| problem(LoadErrorKind::Engine(one_line(&e))))?;
        let component = Component::from_binary(&engine, &bytes)
            .map_err(|e| problem(LoadErrorKind::Invalid(one_line(&e))))?;

        // Exports are checked before imports: a component that serves no
        // HTTP at all is better reported as such than by its first import.
        if !exports_http_handler(&engine, &component) {
            return Err(problem(LoadErrorKind::NoHttpHandler));
        }
        if let Some((import, option)) = import_needing_option(&engine, &component, options) {
            return Err(problem(LoadErrorKind::NeedsOption { import, option }));
        }
        let linker = host::linker(&engine, &options.wasi())
            .map_err(|e| problem(LoadErrorKind::Engine(one_line(&e))))?;
        let instance_pre = linker
            .instantiate_pre(&component)
            .map_err(|e| problem(LoadErrorKind::UnsatisfiedImport(one_line(&e))))?;
        const WASM_PAGE: u64 = 64 << 10;
        let initial_memory = component
            .resources_required()
            .and_then(|needs| needs.max_initial_memory_size)
            .unwrap_or(0)
            .saturating_mul(WASM_PAGE);
        // The typed bindings are the authority on the world: they check the
        // handler's full signature, not just the export's name.
        let (world, pre) = match ServicePre::new(instance_pre.clone()) {
            Ok(pre) => (World::P3, ProxyPre::P3(pre)),
            Err(p3_error) => match P2ProxyPre::new(instance_pre) {
                Ok(pre) => (World::P2, ProxyPre::P2(pre)),
                Err(p2_error) => {
                    return Err(problem(LoadErrorKind::HandlerMismatch(format!(
                        "as p3: {}; as p2: {}",
                        one_line(&p3_error),
                        one_line(&p2_error)
                    ))));
                }
            },
        };

        Ok(Self {
            path: path.to_path_buf(),
            engine,
            allocator,
            interruptible,
            world,
            policy,
            initial_memory,
            pre,
        })
    }

    /// The file this component was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The world the component serves.
    pub fn world(&self) -> World {
        self.world
    }

    /// The reuse policy the component declares in its `reprise:reuse-policy`
    /// section; `None` when it has none (it was not built with reprise).
    pub fn policy(&self) -> Option<&ReusePolicy> {
        self.policy.as_ref()
    }

    /// The largest initial size of any of the component's linear memories,
    /// in bytes: what an instance needs before serving anything.
    pub fn initial_memory(&self) -> u64 {
        self.initial_memory
    }

    /// The instance allocator the engine ended up with.
    pub fn allocator(&self) -> Allocator {
        self.allocator
    }

    /// Whether guest code was compiled with epoch checks (needed for
    /// request timeouts).
    pub fn interruptible(&self) -> bool {
        self.interruptible
    }

    pub(crate) fn engine(&self) -> &Engine {
        &self.engine
    }

    pub(crate) fn pre(&self) -> &ProxyPre<Host> {
        &self.pre
    }
}

/// Why a component cannot be served; displays as one line naming the file
/// and what to do about it.
#[derive(Debug)]
pub struct LoadError {
    path: PathBuf,
    kind: LoadErrorKind,
}

#[derive(Debug)]
enum LoadErrorKind {
    Unreadable(io::Error),
    NotAFile,
    TooLarge(u64),
    NotWasm,
    CoreModule,
    UnknownWasmVersion([u8; 4]),
    Policy(PolicyError),
    Engine(String),
    Invalid(String),
    NoHttpHandler,
    NeedsOption {
        import: String,
        option: &'static str,
    },
    UnsatisfiedImport(String),
    HandlerMismatch(String),
}

impl LoadError {
    /// The file the error is about.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.path.display();
        match &self.kind {
            LoadErrorKind::Unreadable(e) if e.kind() == io::ErrorKind::NotFound => write!(
                f,
                "{path}: no such file; pass the path of a component (.wasm), e.g. one built by `just build`"
            ),
            LoadErrorKind::Unreadable(e) => write!(
                f,
                "{path}: cannot read the file ({e}); check the path and its permissions"
            ),
            LoadErrorKind::NotAFile => write!(
                f,
                "{path} is not a regular file (a directory, a device or a pipe); pass the path of a component file (.wasm)"
            ),
            LoadErrorKind::TooLarge(size) => write!(
                f,
                "{path} is {}, more than the {} a component file may be; check the path",
                HumanSize(*size),
                HumanSize(MAX_COMPONENT_SIZE)
            ),
            LoadErrorKind::NotWasm => write!(
                f,
                "{path} is not a WebAssembly binary; pass a component built for wasm32-wasip2 (.wasm)"
            ),
            LoadErrorKind::CoreModule => write!(
                f,
                "{path} is a core WebAssembly module, not a component; build it for the wasm32-wasip2 target or wrap it with `wasm-tools component new`"
            ),
            LoadErrorKind::UnknownWasmVersion(version) => write!(
                f,
                "{path} is a WebAssembly binary of an unknown version/layer ({version:02x?}); rebuild it as a component with a current toolchain"
            ),
            LoadErrorKind::Policy(e) => write!(
                f,
                "{path}: {e}; rebuild the component with a reprise release this host-runner reads, or upgrade host-runner"
            ),
            LoadErrorKind::Engine(e) => {
                write!(f, "{path}: could not set up wasmtime to run it: {e}")
            }
            LoadErrorKind::Invalid(e) => write!(
                f,
                "{path} is not a valid component ({e}); rebuild it, and check that the toolchain targets WASI 0.2 or 0.3"
            ),
            LoadErrorKind::NoHttpHandler => write!(
                f,
                "{path} exports no HTTP handler (neither wasi:http/handler@0.3 nor wasi:http/incoming-handler@0.2); build it as an HTTP component, e.g. with the reprise SDK's export macro"
            ),
            LoadErrorKind::NeedsOption { import, option } => write!(
                f,
                "{path} imports {import}, which is provided only when asked for; serve it with {option} (as with wasmtime serve)"
            ),
            LoadErrorKind::UnsatisfiedImport(e) => write!(
                f,
                "{path} needs an import host-runner does not provide ({e}); host-runner provides WASI 0.2 and 0.3 (cli, clocks, filesystem, random, sockets, http) and, with -Sconfig and -Skeyvalue, wasi:config and wasi:keyvalue, so remove the dependency or use a host that provides it"
            ),
            LoadErrorKind::HandlerMismatch(e) => write!(
                f,
                "{path} exports an HTTP handler host-runner cannot call ({e}); rebuild it against wasi:http 0.2.x or 0.3.0"
            ),
        }
    }
}

/// The message already includes the underlying error, so no `source` is
/// reported: printing the chain would repeat it.
impl std::error::Error for LoadError {}

/// Largest component file loaded. Real components are tens of MiB at most;
/// the cap keeps a wrong path (a disk image, a log) from being read whole
/// into memory before it is refused.
const MAX_COMPONENT_SIZE: u64 = 512 << 20;

/// Reads the component file at `path`, refusing before reading it whole
/// what cannot be one: anything but a regular file (reading `/dev/zero`
/// never ends, opening a FIFO waits for a writer), a file that does not
/// start like a component, a file over [`MAX_COMPONENT_SIZE`].
fn read_component_file(path: &Path) -> Result<Vec<u8>, LoadErrorKind> {
    use std::io::Read as _;

    let file = files::open_regular(path, "the component").map_err(|e| match e.into_kind() {
        FileErrorKind::NotAFile => LoadErrorKind::NotAFile,
        FileErrorKind::TooLarge(size, _) => LoadErrorKind::TooLarge(size),
        FileErrorKind::Io(e) => LoadErrorKind::Unreadable(e),
    })?;
    let metadata = file.metadata().map_err(LoadErrorKind::Unreadable)?;
    let mut bytes = Vec::new();
    let mut preamble = file.take(8);
    preamble
        .read_to_end(&mut bytes)
        .map_err(LoadErrorKind::Unreadable)?;
    classify_binary(&bytes)?;
    if metadata.len() > MAX_COMPONENT_SIZE {
        return Err(LoadErrorKind::TooLarge(metadata.len()));
    }
    // One byte more than the limit tells a file at the limit from one past
    // it, should it have grown since `metadata`.
    let mut rest = preamble
        .into_inner()
        .take(MAX_COMPONENT_SIZE + 1 - bytes.len() as u64);
    bytes.reserve(metadata.len().saturating_sub(8) as usize);
    rest.read_to_end(&mut bytes)
        .map_err(LoadErrorKind::Unreadable)?;
    if bytes.len() as u64 > MAX_COMPONENT_SIZE {
        return Err(LoadErrorKind::TooLarge(bytes.len() as u64));
    }
    Ok(bytes)
}

/// Checks the 8-byte preamble so that the common mistakes (a text file, a
/// core module) get a precise message instead of a parser error.
fn classify_binary(bytes: &[u8]) -> Result<(), LoadErrorKind> {
    const MAGIC: &[u8; 4] = b"\0asm";
    const CORE_MODULE: [u8; 4] = [0x01, 0x00, 0x00, 0x00];
    // Version 0x0d of the component layer (layer 1), as emitted by every
    // current component toolchain.
    const COMPONENT: [u8; 4] = [0x0d, 0x00, 0x01, 0x00];

    let Some((magic, rest)) = bytes.split_first_chunk::<4>() else {
        return Err(LoadErrorKind::NotWasm);
    };
    if magic != MAGIC {
        return Err(LoadErrorKind::NotWasm);
    }
    let Some((version, _)) = rest.split_first_chunk::<4>() else {
        return Err(LoadErrorKind::NotWasm);
    };
    match *version {
        COMPONENT => Ok(()),
        CORE_MODULE => Err(LoadErrorKind::CoreModule),
        other => Err(LoadErrorKind::UnknownWasmVersion(other)),
    }
}

/// Whether the component exports something named like an HTTP handler of
/// either world (the typed bindings check the rest).
fn exports_http_handler(engine: &Engine, component: &Component) -> bool {
    component.component_type().exports(engine).any(|(name, _)| {
        name.starts_with("wasi:http/handler@0.3")
            || name.starts_with("wasi:http/incoming-handler@0.2")
    })
}

/// The first import of an interface that `serve` links only when a `-S`
/// option asks for it, with that option, if the option is off.
fn import_needing_option(
    engine: &Engine,
    component: &Component,
    options: &ServeOptions,
) -> Option<(String, &'static str)> {
    let wasi = options.wasi();
    component
        .component_type()
        .imports(engine)
        .find_map(|(name, _)| {
            let option = if name.starts_with("wasi:keyvalue/") && !wasi.keyvalue {
                "-Skeyvalue"
            } else if name.starts_with("wasi:config/") && !wasi.config {
                "-Sconfig"
            } else {
                return None;
            };
            Some((name.to_owned(), option))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preamble_tells_text_core_modules_and_components_apart() {
        assert!(matches!(
            classify_binary(b"hello"),
            Err(LoadErrorKind::NotWasm)
        ));
        assert!(matches!(classify_binary(b""), Err(LoadErrorKind::NotWasm)));
        assert!(matches!(
            classify_binary(b"\0asm"),
            Err(LoadErrorKind::NotWasm)
        ));
        assert!(matches!(
            classify_binary(b"\0asm\x01\0\0\0"),
            Err(LoadErrorKind::CoreModule)
        ));
        assert!(classify_binary(b"\0asm\x0d\0\x01\0").is_ok());
        assert!(matches!(
            classify_binary(b"\0asm\x0c\0\x01\0"),
            Err(LoadErrorKind::UnknownWasmVersion(_))
        ));
    }
}
