/* libvsock: host<->guest agent protocol over AF_VSOCK, hybrid vsock, unix
 * sockets and TCP. Include this one header for everything. */
#pragma once

#include <vsock/version.h>
#include <vsock/error.h>
#include <vsock/addr.h>
#include <vsock/conn.h>
#include <vsock/frame.h>
#include <vsock/msg.h>
#include <vsock/client.h>

