// The RTSP server of the stream tests (npm rtsp-streaming-server 2.1.0): producers publish
// (ANNOUNCE/RECORD) on the first port, clients read on the second, RTP over UDP from the
// third. usage: node server.js PUBLISH_PORT CLIENT_PORT RTP_PORT_START
const RtspServer = require('rtsp-streaming-server').default;
const [pub, cli, rtp] = process.argv.slice(2).map(Number);
const server = new RtspServer({serverPort: pub, clientPort: cli, rtpPortStart: rtp, rtpPortCount: 200});
server.start().then(() => console.log('ready')).catch((e) => { console.error(e); process.exit(1); });
