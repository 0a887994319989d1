use u2ad_core::locate::sample_file;
use u2ad_core::volume::Volume;

#[test]
fn reads_errsm11_as_nibabel() {
    let v = Volume::read(sample_file("spine-t2/sub-errsm11/anat/sub-errsm11_T2w.nii.gz")).unwrap();
    assert_eq!(v.shape(), [384, 216, 52]);
    assert_eq!(v.orientation().to_string(), "PSR");
    let p = Volume::read(sample_file("templates/PAM50_small/PAM50_small_t2.nii.gz")).unwrap();
    assert_eq!(p.orientation().to_string(), "LAS");
    assert_eq!(p.shape(), [70, 70, 275]);
}
