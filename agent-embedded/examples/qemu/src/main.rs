//! reflex example firmware for the Arm MPS2-AN386 board (Cortex-M4) under QEMU:
//!
//! ```text
//! qemu-system-arm -M mps2-an386 -nographic -monitor none -serial pty \
//!     -semihosting-config enable=on,target=native -kernel <elf>
//! ```
//!
//! Built with `REFLEX_DEVICE_KEY=<file>` (a `reflex-hmac-sha256` key file, the one the
//! Manager's trust directory holds as `qemu-1.mac`), the device tags everything it sends with
//! that key and performs only actions tagged with it; built without, it runs in lab mode.
//! The board has no non-volatile memory to count boots in, so a keyed device numbers its
//! messages from the wall-clock second of its boot, which it asks QEMU for by semihosting
//! (`SYS_TIME`): hence `-semihosting-config`, needed by a keyed build only.
//!
//! Device `qemu-1` sends framed events on UART0 (uptime every second, CPU load every second,
//! a simulated temperature every 500 ms), evaluates its own rulebook (`rules.yml`, compiled
//! into flash by `build.rs`) which drives LED 0 of the board, and performs the
//! `reactions.device.*` actions that arrive on UART0 for `qemu-1`.
//!
//! The board support is a few registers written directly: the CMSDK APB UART, the FPGA I/O
//! LED register and SysTick. No PAC, no HAL.
#![no_std]
#![no_main]

use core::sync::atomic::{AtomicU32, Ordering};

use cortex_m::peripheral::syst::SystClkSource;
use cortex_m_rt::{entry, exception};
use panic_halt as _;
use reflex_agent_embedded::{Agent, AgentMemory, Clock, Scheduled};
use reflex_beacons::device::{CpuLoad, IdleCounter, Sensor, SensorRead, Uptime};
use reflex_beacons::{BeaconError, Schedule};

include!(concat!(env!("OUT_DIR"), "/rules.rs"));
include!(concat!(env!("OUT_DIR"), "/device_key.rs"));

/// The device id: source of its events, target of its actions.
const DEVICE_ID: &str = "qemu-1";
/// The board's system clock, which also drives SysTick and the UART.
const SYSCLK_HZ: u32 = 25_000_000;
/// The line's baud rate (QEMU ignores it; a real MPS2 board does not).
const BAUD: u32 = 115_200;
/// Register slots of the on-device store: two rules, one group each, and room to spare.
const SLOTS: usize = 4;
/// Longest the idle loop runs before the agent looks at the line and the beacons again.
const MAX_IDLE_MS: u64 = 10;

/// Milliseconds since boot, counted by SysTick.
static MILLIS: AtomicU32 = AtomicU32::new(0);
/// Idle-loop iterations, for the CPU load beacon.
static IDLE: IdleCounter = IdleCounter::new();

#[exception]
fn SysTick() {
    MILLIS.fetch_add(1, Ordering::Relaxed);
}

/// SysTick milliseconds, widened to 64 bits (the 32-bit counter wraps after 49 days).
struct SysTickClock {
    high: u64,
    last: u32,
}

impl Clock for SysTickClock {
    fn now_ms(&mut self) -> u64 {
        let now = MILLIS.load(Ordering::Relaxed);
        if now < self.last {
            self.high += 1 << 32;
        }
        self.last = now;
        self.high | u64::from(now)
    }
}

/// The CMSDK APB UART of the MPS2 boards.
mod uart {
    use core::ptr::{read_volatile, write_volatile};

    /// UART0's registers.
    const BASE: usize = 0x4000_4000;
    const DATA: *mut u32 = BASE as *mut u32;
    const STATE: *mut u32 = (BASE + 0x04) as *mut u32;
    const CTRL: *mut u32 = (BASE + 0x08) as *mut u32;
    const BAUDDIV: *mut u32 = (BASE + 0x10) as *mut u32;
    const STATE_TX_FULL: u32 = 1 << 0;
    const STATE_RX_FULL: u32 = 1 << 1;
    const STATE_OVERRUNS: u32 = 0b1100;
    const CTRL_TX_RX_ENABLE: u32 = 0b11;

    /// UART0. There is one: [`Uart0::take`] is called once, from `main`.
    pub struct Uart0(());

    impl Uart0 {
        /// Enables UART0's transmitter and receiver at `baud`.
        pub fn take(sysclk_hz: u32, baud: u32) -> Uart0 {
            // SAFETY: UART0's registers exist on this board at these addresses, and `main`
            // owns them alone.
            unsafe {
                write_volatile(BAUDDIV, sysclk_hz / baud);
                write_volatile(CTRL, CTRL_TX_RX_ENABLE);
            }
            Uart0(())
        }
    }

    /// Whether a received byte waits; usable without the [`Uart0`] (the idle loop asks).
    pub fn rx_ready() -> bool {
        // SAFETY: reading the status register has no side effect.
        unsafe { read_volatile(STATE) & STATE_RX_FULL != 0 }
    }

    /// UART0 errors: a byte was lost to an overrun.
    #[derive(Debug, Clone, Copy)]
    pub struct Overrun;

    impl embedded_io::Error for Overrun {
        fn kind(&self) -> embedded_io::ErrorKind {
            embedded_io::ErrorKind::Other
        }
    }

    impl embedded_io::ErrorType for Uart0 {
        type Error = Overrun;
    }

    impl Uart0 {
        fn check_overrun() -> Result<(), Overrun> {
            // SAFETY: UART0's registers; writing 1 clears an overrun bit.
            unsafe {
                let state = read_volatile(STATE);
                if state & STATE_OVERRUNS != 0 {
                    write_volatile(STATE, state & STATE_OVERRUNS);
                    return Err(Overrun);
                }
            }
            Ok(())
        }
    }

    impl embedded_io::ReadReady for Uart0 {
        fn read_ready(&mut self) -> Result<bool, Overrun> {
            Self::check_overrun()?;
            Ok(rx_ready())
        }
    }

    impl embedded_io::Read for Uart0 {
        /// Reads what is waiting, blocking for the first byte only.
        fn read(&mut self, buf: &mut [u8]) -> Result<usize, Overrun> {
            let mut n = 0;
            while n < buf.len() {
                if !rx_ready() {
                    if n > 0 {
                        break;
                    }
                    continue;
                }
                // SAFETY: UART0's data register; reading it takes the received byte.
                buf[n] = unsafe { read_volatile(DATA) } as u8;
                n += 1;
            }
            Ok(n)
        }
    }

    impl embedded_io::Write for Uart0 {
        fn write(&mut self, buf: &[u8]) -> Result<usize, Overrun> {
            for &b in buf {
                // SAFETY: UART0's registers; the byte is written once the holding register
                // is free.
                unsafe {
                    while read_volatile(STATE) & STATE_TX_FULL != 0 {}
                    write_volatile(DATA, u32::from(b));
                }
            }
            Ok(buf.len())
        }

        fn flush(&mut self) -> Result<(), Overrun> {
            // SAFETY: reading the status register has no side effect.
            unsafe { while read_volatile(STATE) & STATE_TX_FULL != 0 {} }
            Ok(())
        }
    }
}

/// The boot number of a keyed device: the wall-clock second of the boot (seconds since the
/// Unix epoch, from the host by semihosting `SYS_TIME`), so its sequence numbers
/// ([`reflex_core::auth::boot_seq`]) grow across reboots a second or more apart. Lab mode
/// needs none, and does not use semihosting (which stops a board without a debugger).
fn boot_number() -> u32 {
    if DEVICE_KEY.is_none() {
        return 0;
    }
    const SYS_TIME: u32 = 0x11;
    let seconds: u32;
    // SAFETY: a semihosting call: BKPT 0xAB with the operation in r0 and no parameter block;
    // the host answers in r0. QEMU serves it when started with semihosting enabled.
    unsafe {
        core::arch::asm!(
            "bkpt #0xab",
            inout("r0") SYS_TIME => seconds,
            in("r1") 0u32,
            options(nostack),
        );
    }
    seconds
}

/// LED 0 of the board's FPGA I/O block: the pin device reactions drive.
struct Led0;

impl Led0 {
    const LED: *mut u32 = 0x4002_8000 as *mut u32;
}

impl embedded_hal::digital::ErrorType for Led0 {
    type Error = core::convert::Infallible;
}

impl embedded_hal::digital::OutputPin for Led0 {
    fn set_low(&mut self) -> Result<(), Self::Error> {
        // SAFETY: the FPGA I/O LED register; bit 0 is LED 0.
        unsafe { Self::LED.write_volatile(Self::LED.read_volatile() & !1) };
        Ok(())
    }

    fn set_high(&mut self) -> Result<(), Self::Error> {
        // SAFETY: as above.
        unsafe { Self::LED.write_volatile(Self::LED.read_volatile() | 1) };
        Ok(())
    }
}

/// A simulated temperature sensor: a deterministic triangle wave of time, 20 °C to 40 °C and
/// back every 8 s, starting at 30 °C on the way up. It crosses the rulebook's 35 °C at 1 s
/// after boot, then 25 °C at 5 s, and so on.
struct SimulatedThermometer;

impl SensorRead for SimulatedThermometer {
    type Error = BeaconError;

    fn read(&mut self) -> Result<f32, BeaconError> {
        const PERIOD_MS: u32 = 8_000;
        let t = (MILLIS.load(Ordering::Relaxed) + PERIOD_MS / 4) % PERIOD_MS;
        let half = PERIOD_MS / 2;
        let rising = if t < half { t } else { PERIOD_MS - t };
        Ok(20.0 + 20.0 * rising as f32 / half as f32)
    }
}

/// Stack use, measured: the free RAM is painted at boot and the beacon reports how much of
/// it the stack has overwritten since.
mod stack {
    use core::fmt::Write;

    use reflex_beacons::{Beacon, BeaconError, Emit};
    use reflex_core::event::Tag;
    use reflex_core::{Event, Value};

    const PAINT: u32 = 0xCCCC_CCCC;
    /// Room left unpainted below the stack pointer while painting.
    const MARGIN: usize = 64;

    unsafe extern "C" {
        /// First free word above the static data (cortex-m-rt's linker script).
        static mut __sheap: u32;
        /// Top of RAM: the initial stack pointer.
        static _stack_start: u32;
    }

    fn bounds() -> (usize, usize) {
        // Only the symbols' addresses are taken.
        (
            core::ptr::addr_of!(__sheap) as usize,
            core::ptr::addr_of!(_stack_start) as usize,
        )
    }

    /// Fills the free RAM below the stack pointer with a pattern.
    pub fn paint() {
        let (bottom, _) = bounds();
        let sp = cortex_m::register::msp::read() as usize - MARGIN;
        let mut at = bottom;
        while at + 4 <= sp {
            // SAFETY: between the static data and the live stack: RAM nobody uses yet.
            unsafe { (at as *mut u32).write_volatile(PAINT) };
            at += 4;
        }
    }

    /// The most stack used since boot, in bytes.
    pub fn peak() -> usize {
        let (bottom, top) = bounds();
        let mut at = bottom;
        // SAFETY: reading RAM between the static data and the top of the stack.
        while at < top && unsafe { (at as *const u32).read_volatile() } == PAINT {
            at += 4;
        }
        top - at
    }

    /// Reports `stack_peak` (bytes of stack used at most), `static_ram` (bytes of static data)
    /// and `ram_total` under `/device/memory/<id>`.
    pub struct StackBeacon {
        tag: Tag,
    }

    impl StackBeacon {
        pub fn new(id: &str) -> StackBeacon {
            let mut tag = Tag::new();
            let _ = write!(tag, "/device/memory/{id}");
            StackBeacon { tag }
        }
    }

    impl Beacon for StackBeacon {
        fn tag(&self) -> &str {
            &self.tag
        }

        fn sample(&mut self, _now_ms: u64, event: &mut Event) -> Result<Emit, BeaconError> {
            let (bottom, _) = bounds();
            let statics = bottom - 0x2000_0000;
            let peak = peak();
            event.push("stack_peak", Value::Int(peak as i64))?;
            event.push("static_ram", Value::Int(statics as i64))?;
            event.push("ram_total", Value::Int((statics + peak) as i64))?;
            Ok(Emit::Event)
        }
    }
}

#[entry]
fn main() -> ! {
    // cortex-m-rt hands this over as a `&'static mut`: built at compile time, never copied.
    static mut MEMORY: AgentMemory<SLOTS> = AgentMemory::new();

    let Some(core) = cortex_m::Peripherals::take() else {
        panic!("core peripherals taken twice");
    };
    let mut syst = core.SYST;
    syst.set_clock_source(SystClkSource::Core);
    syst.set_reload(SYSCLK_HZ / 1_000 - 1);
    syst.clear_current();
    syst.enable_interrupt();
    syst.enable_counter();

    stack::paint();
    let uart = uart::Uart0::take(SYSCLK_HZ, BAUD);
    let clock = SysTickClock { high: 0, last: 0 };
    let Ok(agent) = Agent::new(DEVICE_ID, uart, Led0, clock, RULES, MEMORY) else {
        panic!("the rulebook or the device id was refused");
    };
    let mut agent = agent.with_key(DEVICE_KEY, boot_number());

    let mut memory = stack::StackBeacon::new(DEVICE_ID);
    let (Ok(mut uptime), Ok(mut cpu), Ok(mut temp)) = (
        Uptime::new(DEVICE_ID),
        CpuLoad::calibrating(&IDLE, DEVICE_ID),
        Sensor::new(SimulatedThermometer, "temp", "temp_c", DEVICE_ID),
    ) else {
        panic!("beacon configuration refused");
    };
    let mut beacons = [
        Scheduled::new(&mut uptime, Schedule::every(1_000)),
        Scheduled::new(&mut cpu, Schedule::every(1_000)),
        Scheduled::new(&mut temp, Schedule::every(500)),
        Scheduled::new(&mut memory, Schedule::every(5_000)),
    ];

    loop {
        let idle_ms = agent.poll(&mut beacons).min(MAX_IDLE_MS);
        let until = agent.clock_mut().now_ms() + idle_ms;
        // The idle loop: counted for the CPU load beacon, left early when a byte arrives.
        while agent.clock_mut().now_ms() < until && !uart::rx_ready() {
            IDLE.tick();
        }
    }
}
