# impacket's samrdump, on a chosen port: connect, enumerate domains and users, query each user,
# close every handle (impacket's SamrCloseHandle carries 4 bytes after its stub).
import sys
from impacket.dcerpc.v5 import transport, samr
port = int(sys.argv[2])
t = transport.DCERPCTransportFactory(r'ncacn_np:%s[\pipe\samr]' % sys.argv[1])
t.set_dport(port)
t.set_credentials('', '')
dce = t.get_dce_rpc()
dce.connect()
dce.bind(samr.MSRPC_UUID_SAMR)
resp = samr.hSamrConnect(dce)
server = resp['ServerHandle']
domains = samr.hSamrEnumerateDomainsInSamServer(dce, server)['Buffer']['Buffer']
name = domains[0]['Name']
sid = samr.hSamrLookupDomainInSamServer(dce, server, name)['DomainId']
domain = samr.hSamrOpenDomain(dce, server, domainId=sid)['DomainHandle']
users = samr.hSamrEnumerateUsersInDomain(dce, domain)['Buffer']['Buffer']
for u in users:
    user = samr.hSamrOpenUser(dce, domain, samr.MAXIMUM_ALLOWED, u['RelativeId'])['UserHandle']
    info = samr.hSamrQueryInformationUser2(dce, user, samr.USER_INFORMATION_CLASS.UserAllInformation)
    print(u['Name'], u['RelativeId'])
    samr.hSamrCloseHandle(dce, user)
samr.hSamrCloseHandle(dce, domain)
samr.hSamrCloseHandle(dce, server)
dce.disconnect()
