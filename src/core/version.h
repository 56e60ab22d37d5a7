/* Build identity of libvox: version, build type and the backends compiled in.
 * `vox version` prints these; checkpoints record the version. */
#ifndef VOX_CORE_VERSION_H
#define VOX_CORE_VERSION_H

const char *vox_version(void);
const char *vox_build_type(void);
/* e.g. "cpu cuda(sm_80,sm_90a) mpi"; a device compiled in but absent at run time is marked "(no device)". */
const char *vox_build_backends(void);

#endif
