;; The greeter as a wasm plugin written by hand in WebAssembly text, following
;; docs/wasm-abi.md: "Hello, <name>!" for names of up to 119 bytes.
(module
  (import "outlet" "log" (func $log (param i32 i32 i32)))
  (memory (export "memory") 1)

  ;; Constant answers and the method paths they belong to.
  ;; HelloResponse { name: "greeter-wat", version: "1.0.0", core_versions: [1],
  ;;   app_versions: [1], services: ["outlet.examples.greeter.v1.Greeter"] }: 62 bytes.
  (data (i32.const 0) "\0a\0bgreeter-wat\12\051.0.0\1a\01\01\22\01\01\32\22outlet.examples.greeter.v1.Greeter")
  ;; HealthResponse { status: SERVING }: 2 bytes.
  (data (i32.const 64) "\08\01")
  (data (i32.const 128) "/outlet.core.v1.Plugin/Hello")               ;; 28
  (data (i32.const 160) "/outlet.core.v1.Plugin/Configure")           ;; 32
  (data (i32.const 192) "/outlet.core.v1.Plugin/Health")              ;; 29
  (data (i32.const 224) "/outlet.core.v1.Plugin/Shutdown")            ;; 31
  (data (i32.const 256) "/outlet.examples.greeter.v1.Greeter/Greet")  ;; 41
  (data (i32.const 320) "greeter-wat has no such method")             ;; 30
  (data (i32.const 352) "the GreetRequest is not one this greeter reads") ;; 46
  (data (i32.const 400) "Hello, ")                                    ;; 7
  (data (i32.const 416) "greeter-wat ready")                          ;; 17

  ;; The host writes calls at 4096 (up to 16 KiB); answers go at 32768.
  (global $input i32 (i32.const 4096))
  (global $answer i32 (i32.const 32768))

  (func (export "outlet_abi_version") (result i32) (i32.const 2))

  (func (export "outlet_alloc") (param $len i32) (result i32)
    (if (result i32) (i32.le_u (local.get $len) (i32.const 16384))
      (then (global.get $input))
      (else (i32.const 0))))

  ;; Whether `len` bytes at $a equal those at $b.
  (func $eq (param $a i32) (param $b i32) (param $len i32) (result i32)
    (loop $next
      (if (i32.eqz (local.get $len)) (then (return (i32.const 1))))
      (if (i32.ne (i32.load8_u (local.get $a)) (i32.load8_u (local.get $b)))
        (then (return (i32.const 0))))
      (local.set $a (i32.add (local.get $a) (i32.const 1)))
      (local.set $b (i32.add (local.get $b) (i32.const 1)))
      (local.set $len (i32.sub (local.get $len) (i32.const 1)))
      (br $next))
    unreachable)

  (func $is (param $ptr i32) (param $len i32) (param $path i32) (param $path_len i32) (result i32)
    (if (result i32) (i32.eq (local.get $len) (local.get $path_len))
      (then (call $eq (local.get $ptr) (local.get $path) (local.get $len)))
      (else (i32.const 0))))

  ;; Writes the answer slot: pointer and length.
  (func $answer (param $out i32) (param $ptr i32) (param $len i32)
    (i32.store (local.get $out) (local.get $ptr))
    (i32.store offset=4 (local.get $out) (local.get $len)))

  (func (export "outlet_call")
    (param $method i32) (param $method_len i32) (param $request i32) (param $request_len i32)
    (param $out i32) (result i32)
    (local $name_len i32)
    (if (call $is (local.get $method) (local.get $method_len) (i32.const 128) (i32.const 28))
      (then
        (call $log (i32.const 2) (i32.const 416) (i32.const 17))
        (call $answer (local.get $out) (i32.const 0) (i32.const 62))
        (return (i32.const 0))))
    (if (call $is (local.get $method) (local.get $method_len) (i32.const 192) (i32.const 29))
      (then
        (call $answer (local.get $out) (i32.const 64) (i32.const 2))
        (return (i32.const 0))))
    (if (i32.or
          (call $is (local.get $method) (local.get $method_len) (i32.const 160) (i32.const 32))
          (call $is (local.get $method) (local.get $method_len) (i32.const 224) (i32.const 31)))
      (then
        (call $answer (local.get $out) (i32.const 0) (i32.const 0))
        (return (i32.const 0))))
    (if (i32.eqz (call $is (local.get $method) (local.get $method_len) (i32.const 256) (i32.const 41)))
      (then
        (call $answer (local.get $out) (i32.const 320) (i32.const 30))
        (return (i32.const 12))))
    ;; GreetRequest: empty, or field 1 (tag 0x0a) with a one-byte length.
    (if (i32.ne (local.get $request_len) (i32.const 0))
      (then
        (local.set $name_len (i32.load8_u offset=1 (local.get $request)))
        (if (i32.or
              (i32.ne (i32.load8_u (local.get $request)) (i32.const 0x0a))
              (i32.or
                (i32.gt_u (local.get $name_len) (i32.const 119))
                (i32.ne (local.get $request_len) (i32.add (local.get $name_len) (i32.const 2)))))
          (then
            (call $answer (local.get $out) (i32.const 352) (i32.const 46))
            (return (i32.const 3))))))
    ;; GreetResponse { message: "Hello, " name "!" }
    (i32.store8 (global.get $answer) (i32.const 0x0a))
    (i32.store8 offset=1 (global.get $answer) (i32.add (local.get $name_len) (i32.const 8)))
    (memory.copy (i32.add (global.get $answer) (i32.const 2)) (i32.const 400) (i32.const 7))
    (memory.copy
      (i32.add (global.get $answer) (i32.const 9))
      (i32.add (local.get $request) (i32.const 2))
      (local.get $name_len))
    (i32.store8 (i32.add (global.get $answer) (i32.add (local.get $name_len) (i32.const 9))) (i32.const 0x21))
    (call $answer (local.get $out) (global.get $answer) (i32.add (local.get $name_len) (i32.const 10)))
    (i32.const 0))
)
