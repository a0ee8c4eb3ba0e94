//! reflex example firmware for an STM32F411CE board (the "black pill"), through
//! stm32f4xx-hal:
//!
//! * USART1 on PA9 (TX) / PA10 (RX) at 115200 baud: the line to `reflex-agent gateway`
//!   (a USB-serial adapter on the host);
//! * the on-board LED on PC13: the pin device reactions drive (the LED is lit when low: the
//!   rulebook's `state: on` drives the pin high, which turns it off; swap the words in
//!   rules.yml for a LED wired the other way);
//! * a TMP102 temperature sensor on I2C1 (PB6 SCL, PB7 SDA) at address 0x48, read through
//!   reflex-beacons' `I2cRegister`;
//! * SysTick counting milliseconds.
//!
//! Device `f411-1`; the rulebook is `rules.yml`, compiled into flash by `build.rs`, as in the
//! QEMU example.
#![no_std]
#![no_main]

use core::sync::atomic::{AtomicU32, Ordering};

use cortex_m::peripheral::syst::SystClkSource;
use cortex_m_rt::{entry, exception};
use panic_halt as _;
use reflex_agent_embedded::{Agent, AgentMemory, Clock, Scheduled};
use reflex_beacons::Schedule;
use reflex_beacons::device::{CpuLoad, I2cRegister, IdleCounter, Sensor, Uptime};
use stm32f4xx_hal::i2c::I2c;
use stm32f4xx_hal::pac;
use stm32f4xx_hal::prelude::*;
use stm32f4xx_hal::serial::{self, Serial};

include!(concat!(env!("OUT_DIR"), "/rules.rs"));

/// The device id.
const DEVICE_ID: &str = "f411-1";
/// Register slots of the on-device store.
const SLOTS: usize = 4;
/// The system clock, from the board's 25 MHz crystal.
const SYSCLK_HZ: u32 = 100_000_000;
/// Longest the idle loop runs before the agent looks at the line and the beacons again.
const MAX_IDLE_MS: u64 = 10;

static MILLIS: AtomicU32 = AtomicU32::new(0);
static IDLE: IdleCounter = IdleCounter::new();

#[exception]
fn SysTick() {
    MILLIS.fetch_add(1, Ordering::Relaxed);
}

/// SysTick milliseconds, widened to 64 bits.
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

/// USART1 as the agent wants it: the HAL writes through embedded-io already; reading is
/// added here over its non-blocking byte reads.
struct Uart(Serial<pac::USART1>);

impl embedded_io::ErrorType for Uart {
    type Error = serial::Error;
}

impl embedded_io::ReadReady for Uart {
    fn read_ready(&mut self) -> Result<bool, serial::Error> {
        Ok(self.0.is_rx_not_empty())
    }
}

impl embedded_io::Read for Uart {
    /// Reads what is waiting, blocking for the first byte only.
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, serial::Error> {
        let mut n = 0;
        while n < buf.len() {
            match embedded_hal_nb::serial::Read::read(&mut self.0) {
                Ok(b) => {
                    buf[n] = b;
                    n += 1;
                }
                Err(nb::Error::WouldBlock) if n > 0 => break,
                Err(nb::Error::WouldBlock) => {}
                Err(nb::Error::Other(e)) => return Err(e),
            }
        }
        Ok(n)
    }
}

impl embedded_io::Write for Uart {
    fn write(&mut self, buf: &[u8]) -> Result<usize, serial::Error> {
        embedded_io::Write::write(&mut self.0, buf)
    }

    fn flush(&mut self) -> Result<(), serial::Error> {
        embedded_io::Write::flush(&mut self.0)
    }
}

#[entry]
fn main() -> ! {
    // Built at compile time, never copied through the stack.
    static mut MEMORY: AgentMemory<SLOTS> = AgentMemory::new();

    let (Some(dp), Some(cp)) = (pac::Peripherals::take(), cortex_m::Peripherals::take()) else {
        panic!("peripherals taken twice");
    };
    let rcc = dp.RCC.constrain();
    let clocks = rcc.cfgr.use_hse(25.MHz()).sysclk(SYSCLK_HZ.Hz()).freeze();

    let mut syst = cp.SYST;
    syst.set_clock_source(SystClkSource::Core);
    syst.set_reload(clocks.sysclk().raw() / 1_000 - 1);
    syst.clear_current();
    syst.enable_interrupt();
    syst.enable_counter();

    let gpioa = dp.GPIOA.split();
    let gpiob = dp.GPIOB.split();
    let gpioc = dp.GPIOC.split();
    let Ok(serial) = dp
        .USART1
        .serial((gpioa.pa9, gpioa.pa10), 115_200.bps(), &clocks)
    else {
        panic!("USART1 configuration refused");
    };
    let led = gpioc.pc13.into_push_pull_output();
    let i2c = I2c::new(dp.I2C1, (gpiob.pb6, gpiob.pb7), 100.kHz(), &clocks);

    let clock = SysTickClock { high: 0, last: 0 };
    let Ok(mut agent) = Agent::new(DEVICE_ID, Uart(serial), led, clock, RULES, MEMORY) else {
        panic!("the rulebook or the device id was refused");
    };
    // TMP102: 12-bit temperature, left-aligned in register 0: 1/256 °C per bit.
    let thermometer = I2cRegister::new(i2c, 0x48, 0x00).scale(1.0 / 256.0);
    let (Ok(mut uptime), Ok(mut cpu), Ok(mut temp)) = (
        Uptime::new(DEVICE_ID),
        CpuLoad::calibrating(&IDLE, DEVICE_ID),
        Sensor::new(thermometer, "temp", "temp_c", DEVICE_ID),
    ) else {
        panic!("beacon configuration refused");
    };
    let mut beacons = [
        Scheduled::new(&mut uptime, Schedule::every(10_000)),
        Scheduled::new(&mut cpu, Schedule::every(10_000)),
        Scheduled::new(
            &mut temp,
            Schedule::every(1_000).min_delta(0.25).heartbeat(60_000),
        ),
    ];

    loop {
        let idle_ms = agent.poll(&mut beacons).min(MAX_IDLE_MS);
        let until = agent.clock_mut().now_ms() + idle_ms;
        while agent.clock_mut().now_ms() < until && !agent.uart_mut().0.is_rx_not_empty() {
            IDLE.tick();
        }
    }
}
