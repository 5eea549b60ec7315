// GNU libmicrohttpd (Debian: libmicrohttpd-dev). Its variadic entry points cannot be called from Swift; these
// inline functions call them with fixed arguments.
#include <stdint.h>
#include <sys/types.h>
#include <sys/socket.h>
#include <microhttpd.h>

/// Starts a daemon on `address` with its options as one array.
static inline struct MHD_Daemon *loraswitch_mhd_start(unsigned int flags, const struct sockaddr *address,
                                                      MHD_AccessHandlerCallback handler, void *handlerContext,
                                                      MHD_RequestCompletedCallback completed, void *completedContext,
                                                      unsigned int connectionLimit, unsigned int timeoutSeconds) {
    struct MHD_OptionItem options[] = {
        { MHD_OPTION_SOCK_ADDR, 0, (void *)address },
        { MHD_OPTION_CONNECTION_LIMIT, connectionLimit, NULL },
        { MHD_OPTION_CONNECTION_TIMEOUT, timeoutSeconds, NULL },
        { MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)completed, completedContext },
        { MHD_OPTION_END, 0, NULL },
    };
    return MHD_start_daemon(flags, 0, NULL, NULL, handler, handlerContext, MHD_OPTION_ARRAY, options, MHD_OPTION_END);
}

/// The port the daemon listens on (0 when unknown).
static inline uint16_t loraswitch_mhd_port(struct MHD_Daemon *daemon) {
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(daemon, MHD_DAEMON_INFO_BIND_PORT);
    return info ? info->port : 0;
}

/// The connection's socket (-1 when unknown).
static inline int loraswitch_mhd_socket(struct MHD_Connection *connection) {
    const union MHD_ConnectionInfo *info = MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CONNECTION_FD);
    return info ? info->connect_fd : -1;
}
