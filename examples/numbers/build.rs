fn main() {
    outlet_build::compile(&["manifests/numbers.proto"], &["manifests"])
        .expect("generate the numbers interface");
}
