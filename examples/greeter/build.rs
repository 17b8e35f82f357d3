fn main() {
    outlet_build::compile(&["manifests/greeter.proto"], &["manifests"])
        .expect("generate the greeter interface");
}
