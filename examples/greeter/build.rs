fn main() {
    outlet_build::compile(&["greeter.proto"], &["."]).expect("generate the greeter interface");
}
