/*
 * ws.h - WebSocket (RFC 6455) sessions on top of an HTTP/1.1 connection,
 * framed by wslay. A handler that gets an Upgrade request calls
 * pr_ws_accept(): the 101 answer goes out and the connection's protocol
 * switches from HTTP/1.1 to the WebSocket session, which then owns the
 * connection until it closes.
 *
 * The session answers pings, pings an idle peer every ws_ping_interval,
 * closes after ws_idle_timeout without a frame, refuses messages over
 * ws_max_message (close 1009), unmasked client frames (1002) and invalid
 * UTF-8 text (1007), and bounds what it queues for a slow reader by
 * ws_max_queued: past it, pr_ws_send_text fails and the session closes
 * (1008). Between half and all of that bound the handler should stop
 * sending; on_drain says when to resume.
 */
#ifndef PR_WS_H
#define PR_WS_H

#include <stddef.h>
#include <stdint.h>

struct pr_request;
struct pr_ws;

struct pr_ws_handler {
	/* A complete text message from the client (reassembled from
	 * fragments). msg is valid during the call only. */
	void (*on_text)(struct pr_ws *ws, const char *msg, size_t len,
			void *arg);
	/* Queued output fell below half of ws_max_queued: send more. */
	void (*on_drain)(struct pr_ws *ws, void *arg);
	/* The session ended (closed by either side, or the connection
	 * died). ws is freed after this returns; it must not be used. */
	void (*on_close)(struct pr_ws *ws, void *arg);
};

/* Is req a WebSocket upgrade request (GET, Upgrade: websocket,
 * Connection: upgrade, Sec-WebSocket-Key, version 13, HTTP/1.1)? */
int pr_ws_is_upgrade(const struct pr_request *req);

/*
 * Accept the upgrade: answer 101 and switch the connection to a session
 * calling h with arg. Returns the session, or NULL after answering req
 * with an error (400 bad handshake, 426 wrong version). Either way req
 * is finished: the caller must not use it afterwards.
 */
struct pr_ws *pr_ws_accept(struct pr_request *req,
			   const struct pr_ws_handler *h, void *arg);

/* Queue a text message. 0, or PR_ERR_LIMIT when the peer has fallen more
 * than ws_max_queued behind (the session is then closing with 1008), or
 * PR_ERR_CLOSED once the session is closing. */
int pr_ws_send_text(struct pr_ws *ws, const char *msg, size_t len);
/* Bytes queued and not yet written to the socket. */
size_t pr_ws_queued(const struct pr_ws *ws);
/* Start the close handshake with code and a short reason. */
void pr_ws_close(struct pr_ws *ws, uint16_t code, const char *reason);
/* The connection's id and peer, for log lines. */
const char *pr_ws_id(const struct pr_ws *ws);

#endif
