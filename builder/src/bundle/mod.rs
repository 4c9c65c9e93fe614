//! Image config to OCI runtime bundle: the image-spec conversion rules and the overlay rootfs.
