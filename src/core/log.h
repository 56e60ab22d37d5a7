/* The one logger: levels, a global threshold (VOX_LOG env: error|warn|info|debug), output to stderr.
 * Library code logs diagnostics only; progress lines belong to the CLI and train layers. */
#ifndef VOX_CORE_LOG_H
#define VOX_CORE_LOG_H

typedef enum vox_log_level { VOX_LOG_ERROR = 0, VOX_LOG_WARN, VOX_LOG_INFO, VOX_LOG_DEBUG } vox_log_level;

void vox_log_set_level(vox_log_level level);
vox_log_level vox_log_get_level(void);
void vox_log(vox_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define vox_log_error(...) vox_log(VOX_LOG_ERROR, __VA_ARGS__)
#define vox_log_warn(...) vox_log(VOX_LOG_WARN, __VA_ARGS__)
#define vox_log_info(...) vox_log(VOX_LOG_INFO, __VA_ARGS__)
#define vox_log_debug(...) vox_log(VOX_LOG_DEBUG, __VA_ARGS__)

#endif
