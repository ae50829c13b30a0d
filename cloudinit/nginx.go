package cloudinit

import (
	"bytes"
	"fmt"
	"net"
	"strconv"
	"text/template"
)

// The site in front of the gateway. nginx terminates TLS with the Koi's
// self-signed certificate (clients pin its fingerprint) and proxies to the
// gateway on loopback, WebSocket upgrades included.
var siteTmpl = template.Must(template.New("site").Parse(`# SkyKoi: TLS in front of the gateway. Written at first boot by cloud-init
# (github.com/skykoi/skykoi/cloudinit); the bootstrap enables it.

# WebSocket upgrades pass through; other requests close as usual.
map $http_upgrade $connection_upgrade {
    default upgrade;
    ''      close;
}

# Plain HTTP only redirects: the gateway is never served without TLS.
server {
    listen {{.HTTPListen}};
    server_name _;
    return 301 https://$host{{.RedirectPort}}$request_uri;
}

server {
    listen {{.HTTPSListen}} ssl;
    server_name _;

    ssl_certificate     {{.TLSDir}}/skykoi.crt;
    ssl_certificate_key {{.TLSDir}}/skykoi.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_prefer_server_ciphers off;
    ssl_session_cache shared:skykoi_tls:1m;
    ssl_session_timeout 1h;
    ssl_session_tickets off;

    location / {
        proxy_pass http://127.0.0.1:{{.UpstreamPort}};
        proxy_http_version 1.1;
        proxy_set_header Upgrade $http_upgrade;
        proxy_set_header Connection $connection_upgrade;
        # $http_host keeps the port the client used: the gateway compares
        # Host with Origin to recognise its own web page.
        proxy_set_header Host $http_host;
        # Set, never appended: the gateway trusts 127.0.0.1 as a proxy, so a
        # client's own X-Forwarded-For must not reach it.
        proxy_set_header X-Forwarded-For $remote_addr;
        proxy_set_header X-Forwarded-Proto $scheme;
        # The gateway ticks every 30 s; idle sockets must outlive that.
        proxy_read_timeout 3600s;
        proxy_send_timeout 3600s;
        # Streamed events go out as they are written.
        proxy_buffering off;
        proxy_request_buffering off;
    }
}
`))

func nginxSite(o Options, upstreamPort int) ([]byte, error) {
	listen := func(port int) string {
		if o.ListenAddress == "" {
			return strconv.Itoa(port)
		}
		return net.JoinHostPort(o.ListenAddress, strconv.Itoa(port))
	}
	redirect := ""
	if o.HTTPSPort != DefaultHTTPSPort {
		redirect = ":" + strconv.Itoa(o.HTTPSPort)
	}
	var b bytes.Buffer
	err := siteTmpl.Execute(&b, map[string]any{
		"HTTPListen":   listen(o.HTTPPort),
		"HTTPSListen":  listen(o.HTTPSPort),
		"RedirectPort": redirect,
		"TLSDir":       o.TLSDir,
		"UpstreamPort": upstreamPort,
	})
	if err != nil {
		return nil, fmt.Errorf("cloudinit: rendering the nginx site: %w", err)
	}
	return b.Bytes(), nil
}
