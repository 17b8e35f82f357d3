//! A greeter exported both as a native and as a cabi plugin, for the tests:
//! it panics when asked to greet "panic", passes a greeting of "host:<name>"
//! on to the Greeter its host offers (through the mechanism it was loaded
//! as), makes its next Health take two seconds when asked to greet
//! "slow-health", and panics while being made when its library's file name
//! contains "panic-in-make".

use greeter::{GreetRequest, GreetResponse, Greeter, GreeterServer};
use outlet_guest::{Plugin, Status};

struct Fragile {
    /// Loaded as a native plugin, not as a cabi one.
    native: bool,
}

impl Greeter for Fragile {
    fn greet(&self, request: GreetRequest) -> Result<GreetResponse, Status> {
        if request.name == "panic" {
            panic!("asked to panic");
        }
        if request.name == "slow-health" {
            SLOW_HEALTH.store(true, std::sync::atomic::Ordering::Relaxed);
            return Ok(GreetResponse {
                message: "slow".into(),
            });
        }
        if let Some(name) = request.name.strip_prefix("host:") {
            let request = GreetRequest { name: name.into() };
            let reply = if self.native {
                greeter::GreeterClient::new(outlet_guest::native::Host).greet(request)?
            } else {
                greeter::GreeterClient::new(outlet_guest::cabi::Host).greet(request)?
            };
            return Ok(GreetResponse {
                message: format!("the host says: {}", reply.message),
            });
        }
        Ok(GreetResponse {
            message: format!("Hello, {}!", request.name),
        })
    }
}

fn plugin(native: bool) -> Plugin {
    if own_path().contains("panic-in-make") {
        panic!("asked to panic while being made");
    }
    Plugin::new("fragile", "0.0.1")
        .service(GreeterServer::new(Fragile { native }))
        .on_health(|| {
            if SLOW_HEALTH.swap(false, std::sync::atomic::Ordering::Relaxed) {
                std::thread::sleep(std::time::Duration::from_secs(2));
            }
            Ok(())
        })
}

/// Whether the next Health takes its time: from a Greet of "slow-health".
static SLOW_HEALTH: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn native_plugin() -> Plugin {
    plugin(true)
}

fn cabi_plugin() -> Plugin {
    plugin(false)
}

/// The file this library was loaded from: the mapping that holds `MARK`.
fn own_path() -> String {
    static MARK: u8 = 0;
    let address = &MARK as *const u8 as usize;
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
    maps.lines()
        .find_map(|line| {
            let mut fields = line.split_whitespace();
            let (start, end) = fields.next()?.split_once('-')?;
            let start = usize::from_str_radix(start, 16).ok()?;
            let end = usize::from_str_radix(end, 16).ok()?;
            (start..end)
                .contains(&address)
                .then(|| fields.nth(4).unwrap_or_default().to_owned())
        })
        .unwrap_or_default()
}

outlet_guest::export_native!(native_plugin);
outlet_guest::export_cabi!(cabi_plugin);
