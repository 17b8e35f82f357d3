//! A wasm guest's answer: the code it returned, and the pointer and length
//! in its answer slot, read against its memory. The input's first four
//! bytes are the code, the next four where the slot is, the next four the
//! limit; the rest is the memory. The answer is exactly the bytes the slot
//! points at, within the memory and the limit, or an error: the guest's
//! own, with its code, or the host's, saying what was wrong.
#![no_main]

use libfuzzer_sys::fuzz_target;
use outlet_fuzz as _;
use outlet_host::fuzzing::{SlotError, wasm_answer, wasm_outcome, wasm_status};
use outlet_protocol::Code;

fuzz_target!(|data: &[u8]| {
    let Some((&[c0, c1, c2, c3, b0, b1, b2, b3, l0, l1, l2, l3], memory)) =
        data.split_first_chunk::<12>()
    else {
        return;
    };
    // Mostly 0, sometimes any.
    let code = match c0 {
        0..128 => 0,
        _ => i32::from_le_bytes([c0, c1, c2, c3]),
    };
    // Mostly slots within the memory, sometimes anywhere.
    let base = u32::from_le_bytes([b0, b1, b2, b3]) as usize;
    let base = if b3 & 0x80 == 0 {
        base % (memory.len() + 1)
    } else {
        base
    };
    let limit = u32::from_le_bytes([l0, l1, l2, l3]) as usize;
    let answer = wasm_answer(memory, base, limit);
    // With the code: the guest's error, or the host's.
    let outcome = wasm_outcome(memory, base, limit, code, "fuzz", "Greet");
    match (&answer, outcome) {
        (Ok(bytes), Ok(taken)) => assert!(code == 0 && *bytes == taken),
        (Ok(bytes), Err(status)) => {
            assert_ne!(code, 0);
            assert_eq!(status.message(), String::from_utf8_lossy(bytes));
            assert_ne!(status.code(), Code::Ok);
        }
        (Err(error), Err(status)) => {
            assert_eq!(status, wasm_status("fuzz", "Greet", error));
            assert!(status.message().len() < 256);
        }
        (Err(_), Ok(_)) => panic!("an answer the slot does not hold"),
    }

    // The same, in wide arithmetic that cannot overflow.
    let Some(slot) = memory.get(base..).and_then(|m| m.first_chunk::<8>()) else {
        assert!(matches!(answer, Err(SlotError::Slot { .. })));
        return;
    };
    let ptr = u64::from(u32::from_le_bytes([slot[0], slot[1], slot[2], slot[3]]));
    let len = u64::from(u32::from_le_bytes([slot[4], slot[5], slot[6], slot[7]]));
    match &answer {
        Ok(bytes) => {
            assert!(len <= limit as u64 && ptr + len <= memory.len() as u64);
            assert_eq!(*bytes, &memory[ptr as usize..(ptr + len) as usize]);
        }
        Err(SlotError::TooLarge { .. }) => assert!(len > limit as u64),
        Err(SlotError::Outside { .. }) => assert!(ptr + len > memory.len() as u64),
        Err(SlotError::Slot { .. }) => panic!("the slot is within the memory"),
    }
});
