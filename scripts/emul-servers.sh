#!/bin/bash
# Real servers on loopback, each from a private directory, for the emulation tests and
# benches (docs/EMULATION.md): `emul-servers.sh start SERVER DIR PORT` starts one and
# returns once it accepts connections; `emul-servers.sh stop SERVER DIR` stops it.
# SERVER: nginx, apache, postfix, exim, vsftpd, proftpd. Installed by scripts/setup.sh.
set -eu
cmd=$1 server=$2 dir=$3 port=${4:-0}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

wait_port() {
    i=0
    while ! (exec 3<>"/dev/tcp/${2:-127.0.0.1}/$1") 2>/dev/null; do
        i=$((i + 1))
        [ $i -gt 100 ] && { echo "$server did not listen on $1" >&2; exit 1; }
        sleep 0.1
    done
}

nginx_conf() {
    mkdir -p "$dir/html" "$dir/tmp"
    cp -p /usr/share/nginx/html/index.html "$dir/html/index.html"
    cat >"$dir/nginx.conf" <<CONF
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/error.log;
events { worker_connections 1024; }
http {
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log $dir/access.log;
    client_body_temp_path $dir/tmp;
    proxy_temp_path $dir/tmp;
    fastcgi_temp_path $dir/tmp;
    uwsgi_temp_path $dir/tmp;
    scgi_temp_path $dir/tmp;
    server {
        listen 127.0.0.1:$port;
        root $dir/html;
        index index.html;
    }
}
CONF
}

apache_conf() {
    mkdir -p "$dir/html"
    cp -p /var/www/html/index.html "$dir/html/index.html"
    m=/usr/lib/apache2/modules
    cat >"$dir/apache2.conf" <<CONF
ServerRoot $dir
PidFile $dir/apache2.pid
Listen 127.0.0.1:$port
LoadModule mpm_event_module $m/mod_mpm_event.so
LoadModule authz_core_module $m/mod_authz_core.so
LoadModule dir_module $m/mod_dir.so
LoadModule mime_module $m/mod_mime.so
LoadModule alias_module $m/mod_alias.so
TypesConfig /etc/mime.types
ErrorLog $dir/error.log
ServerName localhost
ServerTokens OS
DocumentRoot $dir/html
DirectoryIndex index.html
<Directory $dir/html>
    Require all granted
</Directory>
CONF
}

# Postfix from a private config and queue directory (PEERS.md: maillog_file under
# maillog_file_prefixes, no chroot); the host name is the machine's.
postfix_conf() {
    mkdir -p "$dir/queue" "$dir/data"
    chown postfix "$dir/data"
    cat >"$dir/main.cf" <<CONF
compatibility_level = 3.6
queue_directory = $dir/queue
data_directory = $dir/data
command_directory = /usr/sbin
daemon_directory = /usr/lib/postfix/sbin
meta_directory = /etc/postfix
mail_owner = postfix
setgid_group = postdrop
myhostname = $(hostname)
mydestination = \$myhostname, localhost
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.1/32
maillog_file = $dir/maillog
maillog_file_prefixes = $dir
alias_maps =
alias_database =
smtpd_banner = \$myhostname ESMTP \$mail_name (Debian/GNU)
biff = no
CONF
    sed -e "s/^smtp      inet/127.0.0.1:$port      inet/" \
        -e 's/^\([a-z0-9.:]* *[a-z-]* *[-ny] *[-ny]\) *[-y] /\1 n /' \
        /etc/postfix/master.cf.proto >"$dir/master.cf"
}

# vsftpd on a high port (PEERS.md): anonymous logins into a root-owned tree with a readme, a
# `pub/` directory with a text file of bare LFs (TYPE A shows whether the server converts
# them), and an `incoming/` directory open to uploads; times fixed in the past, so listings
# differ only where uploads change them; passive ports just above the control port. A second
# vsftpd serves the same tree on [::1] (one vsftpd listens on IPv4 or IPv6, not both).
vsftpd_conf() {
    mkdir -p "$dir/ftproot/incoming" "$dir/ftproot/pub" "$dir/empty"
    printf 'Welcome to this archive.\r\n' >"$dir/ftproot/README.txt"
    printf 'Mirror notes\nline two\n' >"$dir/ftproot/pub/notes.txt"
    chown root:root "$dir/ftproot" "$dir/ftproot/pub" && chmod 755 "$dir/ftproot" "$dir/ftproot/pub"
    chown ftp:ftp "$dir/ftproot/incoming" && chmod 755 "$dir/ftproot/incoming"
    touch -d '2024-01-15 10:00:00 UTC' "$dir/ftproot/README.txt" "$dir/ftproot/pub/notes.txt" \
        "$dir/ftproot/pub" "$dir/ftproot/incoming"
    cat >"$dir/vsftpd.conf" <<CONF
listen=YES
listen_address=127.0.0.1
listen_port=$port
background=NO
seccomp_sandbox=NO
isolate=NO
isolate_network=NO
anonymous_enable=YES
local_enable=NO
write_enable=YES
anon_upload_enable=YES
anon_root=$dir/ftproot
secure_chroot_dir=$dir/empty
pasv_enable=YES
pasv_min_port=$((port + 1))
pasv_max_port=$((port + 20))
port_enable=YES
connect_from_port_20=NO
xferlog_enable=NO
vsftpd_log_file=$dir/vsftpd.log
CONF
    sed -e 's/^listen=YES/listen=NO\nlisten_ipv6=YES/' -e 's/^listen_address=.*/listen_address6=::1/' \
        -e "s|^vsftpd_log_file=.*|vsftpd_log_file=$dir/vsftpd6.log|" \
        "$dir/vsftpd.conf" >"$dir/vsftpd6.conf"
}

# Exim beside Postfix (they conflict as packages, PEERS.md): the daemon package's files
# unpacked into DIR/pkg, a private configuration, spool and log; local mail is accepted and
# delivered to /dev/null, relaying denied.
exim_conf() {
    if [ ! -x "$dir/pkg/usr/sbin/exim4" ]; then
        mkdir -p "$dir/pkg"
        (cd "$dir" && apt-get download exim4-daemon-light >/dev/null 2>&1)
        dpkg-deb -x "$dir"/exim4-daemon-light_*.deb "$dir/pkg"
    fi
    id Debian-exim >/dev/null 2>&1 ||
        useradd --system --user-group --no-create-home --shell /usr/sbin/nologin Debian-exim
    mkdir -p "$dir/spool" "$dir/log"
    chown -R Debian-exim "$dir/spool" "$dir/log"
    cat >"$dir/exim.conf" <<CONF
primary_hostname = $(hostname)
daemon_smtp_ports = $port
local_interfaces = 127.0.0.1
spool_directory = $dir/spool
log_file_path = $dir/log/%slog
pid_file_path = $dir/exim.pid
exim_user = Debian-exim
exim_group = Debian-exim
never_users = root
domainlist local_domains = @ : localhost
acl_smtp_rcpt = acl_check_rcpt
begin acl
acl_check_rcpt:
  accept  domains = +local_domains
  deny    message = relay not permitted
begin routers
local_user:
  driver = accept
  domains = +local_domains
  transport = devnull
begin transports
devnull:
  driver = appendfile
  file = /dev/null
  user = Debian-exim
CONF
}

# ProFTPD beside vsftpd (they conflict as packages): proftpd-core unpacked into DIR/pkg, run
# standalone from a configuration after Debian's default one (its modules loaded from the
# unpacked package) with Debian's commented-out anonymous section switched on: a root-owned
# tree with a readme and an `incoming/` open to uploads only; passive ports above the port.
proftpd_conf() {
    if [ ! -x "$dir/pkg/usr/sbin/proftpd" ]; then
        mkdir -p "$dir/pkg"
        (cd "$dir" && apt-get download proftpd-core >/dev/null 2>&1)
        dpkg-deb -x "$dir"/proftpd-core_*.deb "$dir/pkg"
    fi
    id ftp >/dev/null 2>&1 ||
        useradd --system --no-create-home --home-dir /srv/ftp --shell /usr/sbin/nologin ftp
    mkdir -p "$dir/ftproot/incoming" "$dir/log"
    printf 'Welcome to this archive.\r\n' >"$dir/ftproot/README.txt"
    chown root:root "$dir/ftproot" && chmod 755 "$dir/ftproot"
    chown ftp:nogroup "$dir/ftproot/incoming" && chmod 755 "$dir/ftproot/incoming"
    m=""
    for mod in ctrls_admin quotatab quotatab_file rewrite load ban wrap2 wrap2_file dynmasq \
        exec shaper ratio site_misc facl unique_id copy deflate ifversion readme ifsession; do
        m="$m
LoadModule mod_$mod.c"
    done
    cat >"$dir/proftpd.conf" <<CONF
ModulePath $dir/pkg/usr/lib/proftpd
$m
UseIPv6 off
ServerName "Debian"
ServerType standalone
DeferWelcome off
DefaultServer on
DefaultAddress 127.0.0.1
SocketBindTight on
Port $port
PassivePorts $((port + 1)) $((port + 20))
ShowSymlinks on
ListOptions "-l"
DenyFilter \\*.*/
MaxInstances 30
User nobody
Group nogroup
Umask 022 022
AllowOverwrite on
UseReverseDNS off
WtmpLog off
PidFile $dir/proftpd.pid
ScoreboardFile $dir/proftpd.scoreboard
DelayTable $dir/proftpd.delay
TransferLog $dir/log/xferlog
SystemLog $dir/log/proftpd.log
QuotaEngine off
Ratios off
DelayEngine on
ControlsEngine off
AdminControlsEngine off
<Anonymous $dir/ftproot>
  User ftp
  Group nogroup
  UserAlias anonymous ftp
  DirFakeUser on ftp
  DirFakeGroup on ftp
  RequireValidShell off
  MaxClients 10
  <Directory *>
    <Limit WRITE>
      DenyAll
    </Limit>
  </Directory>
  <Directory incoming>
    Umask 022 022
    <Limit READ WRITE>
      DenyAll
    </Limit>
    <Limit STOR>
      AllowAll
    </Limit>
  </Directory>
</Anonymous>
CONF
}

case "$cmd:$server" in
start:nginx)
    nginx_conf
    nginx -c "$dir/nginx.conf"
    wait_port "$port" ;;
stop:nginx)
    [ -f "$dir/nginx.pid" ] && kill "$(cat "$dir/nginx.pid")" 2>/dev/null || true ;;
start:apache)
    apache_conf
    apache2 -d "$dir" -f "$dir/apache2.conf" -k start
    wait_port "$port" ;;
stop:apache)
    [ -f "$dir/apache2.pid" ] && kill "$(cat "$dir/apache2.pid")" 2>/dev/null || true ;;
start:postfix)
    postfix_conf
    postfix -c "$dir" start 2>>"$dir/start.log" || { cat "$dir/start.log" >&2; exit 1; }
    wait_port "$port" ;;
stop:postfix)
    postfix -c "$dir" stop 2>/dev/null || true ;;
start:exim)
    exim_conf
    "$dir/pkg/usr/sbin/exim4" -C "$dir/exim.conf" -bd -q30m
    wait_port "$port" ;;
stop:exim)
    [ -f "$dir/exim.pid" ] && kill "$(cat "$dir/exim.pid")" 2>/dev/null || true ;;
start:vsftpd)
    vsftpd_conf
    vsftpd "$dir/vsftpd.conf" >>"$dir/start.log" 2>&1 &
    echo $! >"$dir/vsftpd.pid"
    if [ -e /proc/net/if_inet6 ]; then
        vsftpd "$dir/vsftpd6.conf" >>"$dir/start.log" 2>&1 &
        echo $! >"$dir/vsftpd6.pid"
        wait_port "$port" ::1
    fi
    wait_port "$port" ;;
stop:vsftpd)
    for p in vsftpd vsftpd6; do
        [ -f "$dir/$p.pid" ] && kill "$(cat "$dir/$p.pid")" 2>/dev/null || true
    done ;;
start:proftpd)
    proftpd_conf
    "$dir/pkg/usr/sbin/proftpd" -c "$dir/proftpd.conf" 2>>"$dir/start.log" ||
        { cat "$dir/start.log" >&2; exit 1; }
    wait_port "$port" ;;
stop:proftpd)
    # Gone once the port is free: the next test's farm listens on it.
    if [ -f "$dir/proftpd.pid" ]; then
        pid=$(cat "$dir/proftpd.pid")
        kill "$pid" 2>/dev/null || true
        i=0
        while kill -0 "$pid" 2>/dev/null && [ $i -lt 50 ]; do
            i=$((i + 1))
            sleep 0.1
        done
    fi ;;
*)
    echo "usage: $0 start|stop nginx|apache|postfix|exim|vsftpd|proftpd DIR [PORT]" >&2
    exit 2 ;;
esac
