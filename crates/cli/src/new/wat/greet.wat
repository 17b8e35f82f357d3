
  ;; Greet: a GreetRequest { string name = 1; } answered with a GreetResponse
  ;; { string message = 1; }. The greeting is config key "greeting", fetched
  ;; from the host with the imports `config` and `take`, else "Hello".
  (func $greet (param $request i32) (param $request_len i32) (param $out i32) (result i32)
    (local $name i32) (local $name_len i32) (local $greeting i32) (local $greeting_len i32)
    (local $value i64) (local $at i32)
    ;; The request: empty, or field 1 (tag 0x0a), its length in one or two
    ;; bytes (a varint), and the name, which ends the message.
    (if (local.get $request_len)
      (then
        (local.set $name (i32.add (local.get $request) (i32.const 2)))
        (local.set $name_len (i32.load8_u offset=1 (local.get $request)))
        (if (i32.ge_u (local.get $name_len) (i32.const 0x80))
          (then
            (local.set $at (i32.load8_u offset=2 (local.get $request)))
            (local.set $name (i32.add (local.get $request) (i32.const 3)))
            (local.set $name_len
              (i32.or (i32.and (local.get $name_len) (i32.const 0x7f))
                      (i32.shl (local.get $at) (i32.const 7))))
            (if (i32.ge_u (local.get $at) (i32.const 0x80))
              (then
                (call $answer (local.get $out) {{bad_request}})
                (return (i32.const 3))))))
        (if (i32.or
              (i32.ne (i32.load8_u (local.get $request)) (i32.const 0x0a))
              (i32.ne (i32.add (local.get $name) (local.get $name_len))
                      (i32.add (local.get $request) (local.get $request_len))))
          (then
            (call $answer (local.get $out) {{bad_request}})
            (return (i32.const 3))))))
    (local.set $greeting (i32.const {{hello_at}}))
    (local.set $greeting_len (i32.const {{hello_len}}))
    (local.set $value (call $config {{key}}))
    (if (i64.ge_s (local.get $value) (i64.const 0))
      (then
        (if (i32.or (i64.eqz (local.get $value)) (i64.gt_s (local.get $value) (i64.const {{max_greeting}})))
          (then
            (call $answer (local.get $out) {{bad_greeting}})
            (return (i32.const 9))))
        (call $take (global.get $scratch))
        (local.set $greeting (global.get $scratch))
        (local.set $greeting_len (i32.wrap_i64 (local.get $value)))))
    ;; The response: tag 0x0a, the message's length (a varint), then
    ;; greeting ", " name "!".
    (i32.store8 (global.get $output) (i32.const 0x0a))
    (local.set $at
      (call $put_varint
        (i32.add (global.get $output) (i32.const 1))
        (i32.add (i32.add (local.get $greeting_len) (local.get $name_len)) (i32.const 3))))
    (memory.copy (local.get $at) (local.get $greeting) (local.get $greeting_len))
    (local.set $at (i32.add (local.get $at) (local.get $greeting_len)))
    (i32.store8 (local.get $at) (i32.const 0x2c))
    (i32.store8 offset=1 (local.get $at) (i32.const 0x20))
    (memory.copy (i32.add (local.get $at) (i32.const 2)) (local.get $name) (local.get $name_len))
    (local.set $at (i32.add (local.get $at) (i32.add (local.get $name_len) (i32.const 2))))
    (i32.store8 (local.get $at) (i32.const 0x21))
    (call $answer (local.get $out)
      (global.get $output) (i32.sub (i32.add (local.get $at) (i32.const 1)) (global.get $output)))
    (i32.const 0))

  ;; Writes `value` as a protobuf varint at `at`; returns where it ends.
  (func $put_varint (param $at i32) (param $value i32) (result i32)
    (loop $more
      (if (i32.ge_u (local.get $value) (i32.const 0x80))
        (then
          (i32.store8 (local.get $at) (i32.or (local.get $value) (i32.const 0x80)))
          (local.set $value (i32.shr_u (local.get $value) (i32.const 7)))
          (local.set $at (i32.add (local.get $at) (i32.const 1)))
          (br $more))))
    (i32.store8 (local.get $at) (local.get $value))
    (i32.add (local.get $at) (i32.const 1)))
