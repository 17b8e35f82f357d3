//! What a language's generator is given and gives back.

/// The service a new plugin serves, as its `.proto` declares it.
#[derive(Clone, Debug)]
pub struct Service {
    /// `package.Service`, as in a manifest's `interface`.
    pub full_name: String,
    /// The service's own name (`Greeter`).
    pub name: String,
    /// The methods, in the order the `.proto` declares them.
    pub methods: Vec<Method>,
}

/// One method of [`Service`].
#[derive(Clone, Debug)]
pub struct Method {
    /// As in the `.proto` (`Greet`).
    pub name: String,
    /// The Rust trait's name for it (`greet`).
    pub rust: String,
    /// Rust's path of the request type, from the generated module (`GreetRequest`).
    pub input_rust: String,
    /// Rust's path of the response type.
    pub output_rust: String,
    /// The request is a stream (`stream` before its type).
    pub client_streaming: bool,
    /// The response is a stream.
    pub server_streaming: bool,
}

impl Method {
    /// Whether it streams either way.
    pub fn streams(&self) -> bool {
        self.client_streaming || self.server_streaming
    }

    /// The gRPC path: `/package.Service/Method`.
    pub fn path(&self, service: &Service) -> String {
        format!("/{}/{}", service.full_name, self.name)
    }
}

/// What `outlet new` writes, as a generator sees it.
#[derive(Clone, Debug)]
pub struct Project {
    /// The plugin's name: lowercase letters, digits and `-`, starting with a
    /// letter (the folder's name, unless `--name` says otherwise).
    pub name: String,
    /// The Outlet checkout the project builds against, absolute.
    pub outlet: std::path::PathBuf,
    /// The `.proto` file's name inside the project (`greeter.proto`).
    pub proto: String,
    /// The service served.
    pub service: Service,
    /// Whether it is the greeter (a working `Greet`), not stubs.
    pub greeter: bool,
}

/// One file to write, relative to the project's folder.
#[derive(Clone, Debug)]
pub struct File {
    pub path: String,
    pub text: String,
    /// Written with mode 0755 (a script).
    pub executable: bool,
}

impl File {
    pub fn new(path: impl Into<String>, text: impl Into<String>) -> File {
        File {
            path: path.into(),
            text: text.into(),
            executable: false,
        }
    }

    pub fn script(path: impl Into<String>, text: impl Into<String>) -> File {
        File {
            executable: true,
            ..File::new(path, text)
        }
    }
}

/// A generator's answer: the files, and the commands the README gives.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Every file but the manifest, the `.proto` and the README.
    pub files: Vec<File>,
    /// Builds the artifact, run in the project's folder (`cargo build --release`).
    pub build: String,
    /// Runs the project's test, in its folder, after `build`.
    pub test: String,
    /// The artifact the build makes, relative to the folder: the manifest's `path`.
    pub artifact: String,
}
