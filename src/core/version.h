/* Build identity of libvox: version, build type and the backends compiled in.
 * `vox version` prints these; checkpoints record the version. */
#ifndef VOX_CORE_VERSION_H
#define VOX_CORE_VERSION_H

const char *vox_version(void);
const char *vox_build_type(void);
/* e.g. "cpu cuda"; a backend compiled in but without a usable device here says so. */
const char *vox_build_backends(void);

#endif
