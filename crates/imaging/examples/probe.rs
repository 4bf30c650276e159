use dicom_pixeldata::PixelDecoder;
fn main() {
    for p in std::env::args().skip(1) {
        match dicom_object::open_file(&p) {
            Err(e) => println!("{p}: open {e:?}"),
            Ok(o) => match o.decode_pixel_data_frame(0) {
                Err(e) => println!("{p}: decode {e:?}"),
                Ok(px) => println!("{p}: ok {} bytes {:?} first {:?}", px.data().len(), px.photometric_interpretation(), &px.data()[..16.min(px.data().len())]),
            },
        }
    }
}
