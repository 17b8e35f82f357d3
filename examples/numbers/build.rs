fn main() {
    outlet_build::compile(&["numbers.proto"], &["."]).expect("generate the numbers interface");
}
