"""Domain errors, each carrying the exact client-facing message of the spec."""

from __future__ import annotations


class DispatchError(Exception):
    """Base of every error a client may see; `status` is the HTTP status it maps to."""

    status = 400
    headers: dict[str, str] | None = None  # sent with the answer
    closes_connection = False  # the connection is closed after the answer

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidRequest(DispatchError):
    status = 400


class Unauthorized(DispatchError):
    status = 401
    headers = {"WWW-Authenticate": 'Basic realm="api"'}

    def __init__(self, message: str = "Unauthorized") -> None:
        super().__init__(message)


class Forbidden(DispatchError):
    """Refused whoever asks: a carrier's signature that does not hold, a cross-site request,
    a credential used outside its scope."""

    status = 403


class NotFound(DispatchError):
    status = 404

    def __init__(self, message: str = "Resource not found") -> None:
        super().__init__(message)


class Conflict(DispatchError):
    status = 409


class TooManyRequests(DispatchError):
    status = 429

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.headers = {"Retry-After": str(retry_after_s)}


class RequestTimeout(DispatchError):
    status = 408
    # RFC 9110 15.5.9: close the connection, rather than keep waiting for the late body.
    closes_connection = True


class PayloadTooLarge(DispatchError):
    status = 413


class UnsupportedMediaType(DispatchError):
    status = 415


class ServiceUnavailable(DispatchError):
    status = 503
