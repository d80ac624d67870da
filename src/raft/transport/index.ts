export { TcpTransport, RAFT_ERR_AUTH, helloMac, parseAddress, type TransportOptions, type TransportStats, type TransportHandlers, type TransportTls, type TransportTlsMaterial } from './tcp-transport.js';
export { FrameDecoder, encodeFrame, FRAME_CHALLENGE, FRAME_HELLO, FRAME_MESSAGES, FRAME_PING } from './frame.js';
export { LEADER_MESSAGE_DATA_MAX, isLeaderMessage, isLeaderReply, type LeaderMessage, type LeaderReply, type PeerMessage } from './messages.js';
