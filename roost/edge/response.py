"""The bytes one answer sends the client: our head around the app's, the app's body framed as
the edge chose, gathered per read from the app and written in one go; or the edge's own
short page. Knows nothing of slots, timers or the upstream connection's life: the exchange
decides when, this decides what goes on the wire."""

from __future__ import annotations

from collections.abc import Callable

from roost.edge import wire


class ResponseWriter:
    """One answer's client-facing bytes. `write` sends to the client connection; `server_line`
    is the edge's own header line (Server), `server` the bare name for short pages."""

    __slots__ = ("framing", "out", "request_id", "server", "server_line", "write")

    def __init__(self, write: Callable[[bytes], None], request_id: bytes, server_line: bytes, server: bytes) -> None:
        self.write = write
        self.request_id = request_id
        self.server_line = server_line
        self.server = server
        self.framing = wire.NO_BODY
        self.out: list[bytes] = []

    def informational(self, status: int, headers: list[bytes]) -> None:
        """A 1xx for an HTTP/1.1 client (103 Early Hints, say), sent with the next flush."""
        self.out.append(wire.informational_head(status, headers))

    def head(
        self,
        status: int,
        headers: list[bytes],
        length: int | None,
        no_body: bool,
        version: str,
        keep: bool,
        start_kind: bytes,
        cookie: bytes | None,
        node_line: bytes,
    ) -> bool:
        """Choose the body's framing and queue our head; returns whether the client connection
        can still be kept (not when the body runs until the connection closes). `start_kind`
        and `node_line` are b"" when a peer edge answered (its own pass through)."""
        framing = self.framing = wire.framing(length, no_body, version)
        keep = keep and framing != wire.TO_CLOSE
        end = wire.head_end(keep, version)
        self.out.append(
            wire.response_head(
                status, headers, length, framing, self.server_line, self.request_id, start_kind, cookie, end, node_line
            )
        )
        return keep

    def body(self, data: bytes) -> None:
        self.out.append(wire.chunk(data) if self.framing == wire.CHUNKED else data)

    def end(self) -> None:
        """The app's body is complete: close our chunking."""
        if self.framing == wire.CHUNKED:
            self.out.append(wire.LAST_CHUNK)

    def flush(self) -> None:
        """Write what the last read from the app produced, in one go."""
        out = self.out
        if out:
            self.write(b"".join(out) if len(out) > 1 else out[0])
            out.clear()

    def switching(self, headers: list[bytes], upgrade: bytes, start_kind: bytes, node_line: bytes) -> None:
        """The 101 head that opens a tunnel, written now."""
        self.write(wire.switching_head(headers, upgrade, self.server_line, self.request_id, start_kind, node_line))

    def page(
        self,
        status: int,
        message: str,
        *,
        close: bool,
        head_only: bool = False,
        retry_after: int | None = None,
        date: bytes = b"",
        extra: bytes = b"",
        body: bytes | None = None,
    ) -> None:
        """The edge's own short answer instead of anything the app said, written now; `extra`
        header lines and a `body` of its own (a redirect, an ACME challenge's answer) when given."""
        self.out.clear()
        page = wire.page(
            status,
            message,
            self.request_id,
            close=close,
            head_only=head_only,
            retry_after=retry_after,
            server=self.server,
            date=date,
            extra=extra,
            body=body,
        )
        self.write(page)
