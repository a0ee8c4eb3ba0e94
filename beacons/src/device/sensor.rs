//! Sensor readings: a small reading trait, a beacon over it, and an I2C register reader.

use embedded_hal::i2c::{Error as _, I2c, SevenBitAddress};
use reflex_core::event::Tag;
use reflex_core::value::MAX_NAME_LEN;
use reflex_core::{Event, Value};

use crate::text::{check_id, check_segment, tag};
use crate::{Beacon, BeaconError, Emit};

/// Something that reads one number: a temperature, a voltage, a humidity.
///
/// Implement it for a driver, or use [`I2cRegister`]. The error converts into a
/// [`BeaconError`]: use `BeaconError` itself (such as [`BeaconError::SensorFailed`]) or an
/// error of your own with a `From` impl.
pub trait SensorRead {
    /// Why a reading failed.
    type Error: Into<BeaconError>;

    /// Takes one reading.
    fn read(&mut self) -> Result<f32, Self::Error>;
}

impl<S: SensorRead + ?Sized> SensorRead for &mut S {
    type Error = S::Error;

    fn read(&mut self) -> Result<f32, S::Error> {
        (**self).read()
    }
}

/// Reports one [`SensorRead`] reading as a float field, under `/device/sensor/<name>/<id>`.
///
/// ```
/// use reflex_beacons::device::{Sensor, SensorRead};
/// use reflex_beacons::{Beacon, BeaconError, Emit};
/// use reflex_core::{Event, Value};
///
/// struct Thermometer;
/// impl SensorRead for Thermometer {
///     type Error = BeaconError;
///     fn read(&mut self) -> Result<f32, BeaconError> {
///         Ok(21.5)
///     }
/// }
///
/// let mut s = Sensor::new(Thermometer, "boiler", "temp_c", "node-7").unwrap();
/// assert_eq!(s.tag(), "/device/sensor/boiler/node-7");
/// let mut event = Event::new(s.tag(), "node-7").unwrap();
/// assert_eq!(s.sample(0, &mut event), Ok(Emit::Event));
/// assert_eq!(event.get("temp_c"), Some(&Value::Float(21.5)));
/// ```
#[derive(Debug)]
pub struct Sensor<S> {
    reader: S,
    field: &'static str,
    tag: Tag,
}

impl<S: SensorRead> Sensor<S> {
    /// A beacon reporting `reader`'s readings in the field `field`, for the sensor `name` on
    /// the device `device_id`.
    pub fn new(
        reader: S,
        name: &str,
        field: &'static str,
        device_id: &str,
    ) -> Result<Sensor<S>, BeaconError> {
        check_segment(name, "the sensor name must be one non-empty tag segment")?;
        check_id(
            device_id,
            "the device id must be an id: 1 to 32 bytes, not starting with '.', with no '/', '\\', whitespace, control or glob characters",
        )?;
        if field.is_empty() || field.len() > MAX_NAME_LEN {
            return Err(BeaconError::InvalidConfig(
                "the field name must be 1 to 32 bytes",
            ));
        }
        Ok(Sensor {
            reader,
            field,
            tag: tag(format_args!("/device/sensor/{name}/{device_id}"))?,
        })
    }

    /// The reader, to reconfigure it.
    pub fn reader_mut(&mut self) -> &mut S {
        &mut self.reader
    }

    /// Gives the reader back.
    pub fn into_inner(self) -> S {
        self.reader
    }
}

impl<S: SensorRead> Beacon for Sensor<S> {
    fn tag(&self) -> &str {
        &self.tag
    }

    fn sample(&mut self, _now_ms: u64, event: &mut Event) -> Result<Emit, BeaconError> {
        let reading = self.reader.read().map_err(Into::into)?;
        if !reading.is_finite() {
            return Err(BeaconError::InvalidReading);
        }
        event.push(self.field, Value::Float(f64::from(reading)))?;
        Ok(Emit::Event)
    }
}

/// Reads a 16-bit big-endian register of an I2C device and scales it:
/// `reading = raw × scale + offset`, with `raw` signed (two's complement) unless
/// [`unsigned`](I2cRegister::unsigned) is set. This fits most temperature sensors and many
/// other simple I2C sensors.
///
/// ```
/// # use embedded_hal_mock::eh1::i2c::{Mock, Transaction};
/// use reflex_beacons::device::{I2cRegister, SensorRead};
///
/// # let i2c = Mock::new(&[Transaction::write_read(0x48, vec![0x00], vec![0x19, 0x00])]);
/// // A TMP102 / LM75-style sensor at 0x48: temperature register 0, 1/256 °C per bit.
/// let mut tmp = I2cRegister::new(i2c, 0x48, 0x00).scale(1.0 / 256.0);
/// assert_eq!(tmp.read(), Ok(25.0));
/// # tmp.release().done();
/// ```
#[derive(Debug)]
pub struct I2cRegister<I2C> {
    i2c: I2C,
    address: SevenBitAddress,
    register: u8,
    scale: f32,
    offset: f32,
    signed: bool,
}

impl<I2C: I2c> I2cRegister<I2C> {
    /// Reads `register` of the device at the 7-bit `address`, as a signed value, scale 1,
    /// offset 0.
    pub fn new(i2c: I2C, address: SevenBitAddress, register: u8) -> I2cRegister<I2C> {
        I2cRegister {
            i2c,
            address,
            register,
            scale: 1.0,
            offset: 0.0,
            signed: true,
        }
    }

    /// Multiplies the raw value by `scale`.
    pub fn scale(mut self, scale: f32) -> I2cRegister<I2C> {
        self.scale = scale;
        self
    }

    /// Adds `offset` after scaling.
    pub fn offset(mut self, offset: f32) -> I2cRegister<I2C> {
        self.offset = offset;
        self
    }

    /// Treats the raw value as unsigned (0 to 65535).
    pub fn unsigned(mut self) -> I2cRegister<I2C> {
        self.signed = false;
        self
    }

    /// Reads the raw 16-bit register value.
    pub fn read_raw(&mut self) -> Result<u16, BeaconError> {
        let mut buf = [0u8; 2];
        self.i2c
            .write_read(self.address, &[self.register], &mut buf)
            .map_err(|e| BeaconError::Bus(e.kind()))?;
        Ok(u16::from_be_bytes(buf))
    }

    /// Gives the bus back.
    pub fn release(self) -> I2C {
        self.i2c
    }
}

impl<I2C: I2c> SensorRead for I2cRegister<I2C> {
    type Error = BeaconError;

    fn read(&mut self) -> Result<f32, BeaconError> {
        let raw = self.read_raw()?;
        let raw = if self.signed {
            f32::from(raw as i16)
        } else {
            f32::from(raw)
        };
        Ok(raw * self.scale + self.offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use embedded_hal::i2c::ErrorKind;
    use embedded_hal_mock::eh1::i2c::{Mock, Transaction};

    #[test]
    fn reads_big_endian_signed_and_scales() {
        let i2c = Mock::new(&[
            Transaction::write_read(0x48, vec![0x00], vec![0x19, 0x10]),
            // -25 °C on an LM75-style sensor: 0xE700 as i16 is -6400.
            Transaction::write_read(0x48, vec![0x00], vec![0xE7, 0x00]),
        ]);
        let mut t = I2cRegister::new(i2c, 0x48, 0x00).scale(1.0 / 256.0);
        assert_eq!(t.read(), Ok(25.0625));
        assert_eq!(t.read(), Ok(-25.0));
        t.release().done();
    }

    #[test]
    fn unsigned_with_offset() {
        let i2c = Mock::new(&[Transaction::write_read(0x40, vec![0xE5], vec![0xFF, 0xFF])]);
        let mut h = I2cRegister::new(i2c, 0x40, 0xE5)
            .unsigned()
            .scale(0.5)
            .offset(-6.0);
        assert_eq!(h.read_raw(), Ok(0xFFFF));
        h.release().done();

        let i2c = Mock::new(&[Transaction::write_read(0x40, vec![0xE5], vec![0x80, 0x00])]);
        let mut h = I2cRegister::new(i2c, 0x40, 0xE5)
            .unsigned()
            .scale(0.5)
            .offset(-6.0);
        assert_eq!(h.read(), Ok(32768.0 * 0.5 - 6.0));
        h.release().done();
    }

    #[test]
    fn bus_errors_become_beacon_errors() {
        let i2c = Mock::new(&[
            Transaction::write_read(0x48, vec![0x00], vec![0, 0]).with_error(ErrorKind::Other)
        ]);
        let mut t = I2cRegister::new(i2c, 0x48, 0x00);
        assert_eq!(t.read(), Err(BeaconError::Bus(ErrorKind::Other)));
        t.release().done();
    }

    #[test]
    fn sensor_beacon_over_i2c() {
        let i2c = Mock::new(&[
            Transaction::write_read(0x48, vec![0x00], vec![0x10, 0x00]),
            Transaction::write_read(0x48, vec![0x00], vec![0x00, 0x00]).with_error(
                ErrorKind::NoAcknowledge(embedded_hal::i2c::NoAcknowledgeSource::Address),
            ),
        ]);
        let reader = I2cRegister::new(i2c, 0x48, 0x00).scale(1.0 / 256.0);
        let mut s = Sensor::new(reader, "room", "temp_c", "d1").unwrap();
        assert_eq!(s.tag(), "/device/sensor/room/d1");
        let mut e = Event::new(s.tag(), "d1").unwrap();
        assert_eq!(s.sample(0, &mut e), Ok(Emit::Event));
        assert_eq!(e.get("temp_c"), Some(&Value::Float(16.0)));
        assert!(matches!(
            s.sample(1, &mut e),
            Err(BeaconError::Bus(ErrorKind::NoAcknowledge(_)))
        ));
        s.into_inner().release().done();
    }

    struct Broken(f32);
    impl SensorRead for Broken {
        type Error = BeaconError;
        fn read(&mut self) -> Result<f32, BeaconError> {
            if self.0 == 0.0 {
                Err(BeaconError::SensorFailed)
            } else {
                Ok(self.0)
            }
        }
    }

    #[test]
    fn bad_readings_and_bad_names() {
        let mut e = Event::new("/t", "d1").unwrap();
        let mut s = Sensor::new(Broken(f32::NAN), "x", "v", "d1").unwrap();
        assert_eq!(s.sample(0, &mut e), Err(BeaconError::InvalidReading));
        s.reader_mut().0 = 0.0;
        assert_eq!(s.sample(0, &mut e), Err(BeaconError::SensorFailed));
        assert!(Sensor::new(Broken(1.0), "a b", "v", "d1").is_err());
        assert!(Sensor::new(Broken(1.0), "x", "", "d1").is_err());
        let long: &'static str = "a_field_name_longer_than_32_bytes_x";
        assert!(Sensor::new(Broken(1.0), "x", long, "d1").is_err());
    }
}
