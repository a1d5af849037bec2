//! SMB1 command blocks that the corpus captures do not carry, on messages built from MS-CIFS.

use bytes::Bytes;
use honeyfarm_protocols::netbios;
use honeyfarm_runtime::codec::{Class, FieldValue, Message, RoleFields, Value, VisitorMut};

/// A NetBIOS-framed SMB1 message: the 32-byte header with `command` and `flags`, then `body`.
fn smb(command: u8, flags: u8, body: &[u8]) -> Vec<u8> {
    let mut m = b"\xffSMB".to_vec();
    m.push(command);
    m.extend([0; 4]); // status
    m.push(flags);
    m.extend([0x01, 0xc8]); // flags2
    m.extend([0; 12]); // pid_high, signature, reserved
    m.extend([0, 0, 0xff, 0xfe, 0, 0, 0x40, 0]); // tid, pid, uid, mid
    m.extend(body);
    let mut out = (m.len() as u32).to_be_bytes().to_vec();
    out.extend(m);
    out
}

struct SetData(&'static [u8]);

impl VisitorMut for SetData {
    fn field(&mut self, name: &'static str, _class: Class, value: &mut dyn FieldValue) {
        if name == "data" {
            value.set(Value::Bytes(Bytes::from_static(self.0))).unwrap();
        }
    }
}

/// ECHO request and reply: the count (sequence number in the reply) and the data; a longer
/// payload moves ByteCount and the NetBIOS length with it.
#[test]
fn echo_request_and_reply() {
    let request = smb(0x2b, 0x18, b"\x01\x01\x00\x04\x00abcd");
    let (mut msg, used) = netbios::DirectTcp::decode(Bytes::from(request.clone())).unwrap();
    assert_eq!(used, request.len());
    assert_eq!(msg.to_bytes().unwrap(), request);
    let mut text = String::new();
    RoleFields::of(&msg)
        .iter()
        .for_each(|r| text.push_str(&format!("{} ", r.path)));
    assert!(
        text.contains("EchoRequest.shape.Words1.byte_count"),
        "{text}"
    );

    msg.visit_mut(&mut SetData(b"abcdefgh"));
    let grown = msg.to_bytes().unwrap();
    assert_eq!(grown, smb(0x2b, 0x18, b"\x01\x01\x00\x08\x00abcdefgh"));

    let reply = smb(0x2b, 0x98, b"\x01\x01\x00\x04\x00abcd");
    let (msg, _) = netbios::DirectTcp::decode(Bytes::from(reply.clone())).unwrap();
    assert_eq!(msg.to_bytes().unwrap(), reply);
    let paths: Vec<String> = RoleFields::of(&msg).into_iter().map(|r| r.path).collect();
    assert!(
        paths.iter().any(|p| p.contains("EchoResponse")),
        "{paths:?}"
    );
}
