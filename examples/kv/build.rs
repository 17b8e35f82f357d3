fn main() {
    outlet_build::compile(&["kv.proto"], &["."]).expect("generate the KV interface");
}
