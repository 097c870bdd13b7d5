//+------------------------------------------------------------------+
//| CopyBridge/Curve.mqh                                             |
//| copybridge MT4 EA: ZeroMQ CURVE on its two sockets               |
//| (PROTOCOL.md, "Security").                                       |
//|                                                                  |
//| The EA binds, so it is the CURVE server of both sockets. Its     |
//| secret key (40 Z85 characters, a `bridge keys generate` .key     |
//| file) is read from a file in MQL4/Files, not from an input, so   |
//| it is not shown in the chart's input dialog nor saved with the   |
//| chart, template or .set file. The client keys let in (the       |
//| bridge's .pub keys, one a line, '#' starts a comment) are read   |
//| from a second file and checked through ZAP (RFC 27): a REP       |
//| socket bound on inproc://zeromq.zap.01 of the EA's context,      |
//| BEFORE the CURVE sockets bind, answered on every timer tick      |
//| (PollZap). Without a clients file there is no ZAP handler and    |
//| libzmq lets in any client that knows the server's public key:    |
//| encryption and server authentication only.                       |
//|                                                                  |
//| mql-zmq API used (Include/Zmq/SocketOptions.mqh, Z85.mqh):       |
//| setCurveServer(bool), setCurveSecretKey(string), setZapDomain(   |
//| string), Zmq::hasCurve(), Z85::derivePublic(string),             |
//| Z85::encode(string&,const uchar&[]).                             |
//+------------------------------------------------------------------+
#property strict

#include <Zmq/Zmq.mqh>

#define CB_ZAP_ENDPOINT   "inproc://zeromq.zap.01"
#define CB_ZAP_DOMAIN     "copybridge"
#define CB_ZAP_VERSION    "1.0"
#define CB_CURVE_KEY_LEN  40
#define CB_CURVE_CLIENTS  256
#define CB_ZAP_FRAMES     16

//+------------------------------------------------------------------+
//| The EA's CURVE keys and its ZAP handler                          |
//+------------------------------------------------------------------+
class CbCurve
  {
private:
   string            m_secret;
   string            m_public;
   string            m_clients[];
   Socket           *m_zap;
   long              m_allowed;
   long              m_refused;
   //--- a line of a key file: its first word; "" for a blank line or a comment line (its first word starts
   //--- with '#'). '#' is a Z85 character, so a key may hold one, but never first (a group's first digit <= 82)
   string            KeyOf(const string line) const
     {
      int n=StringLen(line);
      int start=0;
      while(start<n && StringGetCharacter(line,start)<=' ')
         start++;
      int end=start;
      while(end<n && StringGetCharacter(line,end)>' ')
         end++;
      string word=StringSubstr(line,start,end-start);
      if(StringGetCharacter(word,0)=='#')
         return("");
      return(word);
     }
   //--- 40 characters of the Z85 alphabet
   bool              IsKey(const string key) const
     {
      if(StringLen(key)!=CB_CURVE_KEY_LEN)
         return(false);
      string alphabet="0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";
      for(int i=0; i<CB_CURVE_KEY_LEN; i++)
         if(StringFind(alphabet,StringSubstr(key,i,1))<0)
            return(false);
      return(true);
     }
   //--- the keys of a file in MQL4/Files: their count, or -1 when it cannot be read or a line is not a key
   int               ReadKeys(const string file,string &keys[]) const
     {
      ArrayResize(keys,0);
      int h=FileOpen(file,FILE_READ|FILE_TXT|FILE_ANSI|FILE_SHARE_READ,0,CP_UTF8);
      if(h==INVALID_HANDLE)
        {
         PrintFormat("copybridge: cannot open MQL4/Files/%s (error %d)",file,GetLastError());
         return(-1);
        }
      int count=0;
      int line=0;
      bool bad=false;
      while(!FileIsEnding(h) && !bad)
        {
         line++;
         string key=KeyOf(FileReadString(h));
         if(key=="")
            continue;
         if(!IsKey(key) || count>=CB_CURVE_CLIENTS)
           {
            PrintFormat("copybridge: MQL4/Files/%s line %d is not a 40-character Z85 CURVE key (or more than %d keys)",
                        file,line,CB_CURVE_CLIENTS);
            bad=true;
            break;
           }
         ArrayResize(keys,count+1);
         keys[count]=key;
         count++;
        }
      FileClose(h);
      return(bad ? -1 : count);
     }
   bool              Listed(const string key) const
     {
      int n=ArraySize(m_clients);
      for(int i=0; i<n; i++)
         if(m_clients[i]==key)
            return(true);
      return(false);
     }
   //--- one frame without waiting; false when none is waiting
   bool              RecvZap(uchar &bytes[],bool &more)
     {
      ZmqMsg msg;
      if(!m_zap.recv(msg,true))
         return(false);
      more=msg.more();
      ArrayFree(bytes);
      if(msg.size()>0)
         msg.getData(bytes);
      return(true);
     }
   bool              SendZap(const string text,const bool more)
     {
      ZmqMsg msg(text);
      if(more)
         return(m_zap.sendMore(msg,true));
      return(m_zap.send(msg,true));
     }
   bool              SendZapBytes(const uchar &bytes[],const bool more)
     {
      int n=ArraySize(bytes);
      ZmqMsg msg(n);
      if(n>0)
         msg.setData(bytes);
      if(more)
         return(m_zap.sendMore(msg,true));
      return(m_zap.send(msg,true));
     }

public:
                     CbCurve(void) : m_zap(NULL), m_allowed(0), m_refused(0) {}
                    ~CbCurve(void) { Close(); }
   bool              On(void) const { return(m_secret!=""); }
   bool              Listing(void) const { return(ArraySize(m_clients)>0); }
   string            PublicKey(void) const { return(m_public); }
   int               Clients(void) const { return(ArraySize(m_clients)); }
   long              Refused(void) const { return(m_refused); }
   long              AllowedCount(void) const { return(m_allowed); }

   //--- an endpoint other machines can reach: tcp:// on a host that is not 127.x.x.x, ::1 or localhost
   static bool       Remote(const string endpoint)
     {
      if(StringFind(endpoint,"tcp://")!=0)
         return(false);
      string address=StringSubstr(endpoint,6);
      int colon=-1;
      for(int i=StringLen(address)-1; i>=0; i--)
         if(StringGetCharacter(address,i)==':')
           {
            colon=i;
            break;
           }
      string host=(colon>=0) ? StringSubstr(address,0,colon) : address;
      if(host=="localhost" || host=="[::1]" || host=="::1")
         return(false);
      return(StringFind(host,"127.")!=0);
     }

   //--- the inputs: the secret key ("" = no CURVE, loopback only) and the clients file ("" = no allow-list)
   bool              Load(const string secretFile,const string clientsFile,const string command,const string events)
     {
      m_secret="";
      m_public="";
      ArrayResize(m_clients,0);
      if(secretFile=="")
        {
         if(Remote(command) || Remote(events))
           {
            PrintFormat("copybridge: %s / %s: not loopback, so CURVE is required: set CurveSecretFile (a key from "
                        "`bridge keys generate`, in MQL4/Files), or bind tcp://127.0.0.1",command,events);
            return(false);
           }
         if(clientsFile!="")
           {
            Print("copybridge: CurveClientsFile needs CurveSecretFile (the EA's own key)");
            return(false);
           }
         return(true);
        }
      if(!Zmq::hasCurve())
        {
         Print("copybridge: this libzmq.dll has no CURVE: install mql-zmq's libzmq.dll with its libsodium.dll");
         return(false);
        }
      string keys[];
      if(ReadKeys(secretFile,keys)!=1)
        {
         PrintFormat("copybridge: CurveSecretFile MQL4/Files/%s must hold one secret key (a .key file of "
                     "`bridge keys generate`)",secretFile);
         return(false);
        }
      m_secret=keys[0];
      m_public=Z85::derivePublic(m_secret);
      if(StringLen(m_public)!=CB_CURVE_KEY_LEN)
        {
         PrintFormat("copybridge: CurveSecretFile MQL4/Files/%s: no public key derives from it",secretFile);
         m_secret="";
         return(false);
        }
      if(clientsFile=="")
        {
         Print("copybridge: no CurveClientsFile: ANY client that knows this EA's public key gets in (encryption and "
               "server authentication only; set CurveClientsFile to list the bridge's public keys)");
         return(true);
        }
      if(ReadKeys(clientsFile,m_clients)<1)
        {
         PrintFormat("copybridge: CurveClientsFile MQL4/Files/%s must list at least one client public key",clientsFile);
         m_secret="";
         return(false);
        }
      for(int i=0; i<ArraySize(m_clients); i++)
         if(m_clients[i]==m_secret)
           {
            Print("copybridge: CurveClientsFile lists the EA's secret key: list the bridge's .pub keys");
            m_secret="";
            return(false);
           }
      return(true);
     }

   //--- the ZAP handler on `ctx`: bound before any CURVE socket binds (else a handshake skips it)
   bool              StartZap(Context &ctx)
     {
      if(!Listing())
         return(true);
      m_zap=new Socket(ctx,ZMQ_REP);
      m_zap.setLinger(0);
      if(!m_zap.bind(CB_ZAP_ENDPOINT))
        {
         PrintFormat("copybridge: cannot bind the ZAP handler %s: %s",CB_ZAP_ENDPOINT,Zmq::errorMessage());
         Close();
         return(false);
        }
      return(true);
     }

   //--- a socket made a CURVE server (before it binds)
   bool              Serve(Socket *s)
     {
      if(!On())
         return(true);
      bool ok=s.setCurveServer(true) && s.setCurveSecretKey(m_secret) && s.setZapDomain(CB_ZAP_DOMAIN);
      if(!ok)
         PrintFormat("copybridge: cannot make a socket a CURVE server: %s",Zmq::errorMessage());
      return(ok);
     }

   //--- answer the ZAP requests waiting (each new connection's handshake waits for one): false when none
   bool              PollZap(void)
     {
      if(CheckPointer(m_zap)==POINTER_INVALID)
         return(false);
      uchar part[];
      bool more=false;
      if(!RecvZap(part,more))
         return(false);
      //--- version, request id, domain, address, identity, mechanism, credentials (the client's 32-byte key)
      string frames[];
      uchar requestId[];
      uchar clientKey[];
      int count=0;
      while(true)
        {
         if(count<CB_ZAP_FRAMES)
           {
            ArrayResize(frames,count+1);
            frames[count]=CharArrayToString(part,0,WHOLE_ARRAY,CP_UTF8);
            if(count==1)
               ArrayCopy(requestId,part);
            if(count==6)
               ArrayCopy(clientKey,part);
           }
         count++;
         if(!more || !RecvZap(part,more))
            break;
        }
      string status="400";
      string text="client key not allowed";
      string client="";
      if(count<7 || frames[0]!=CB_ZAP_VERSION || frames[5]!="CURVE" || ArraySize(clientKey)!=32)
         text="not a CURVE ZAP request";
      else
         if(Z85::encode(client,clientKey) && Listed(client))
           {
            status="200";
            text="OK";
           }
      if(status=="200")
         m_allowed++;
      else
        {
         m_refused++;
         if(m_refused==1 || m_refused%100==0)   // a refused client reconnects every 100 ms or so
            Print("copybridge: CURVE client key ",client," refused (not in CurveClientsFile; ",m_refused,
                  " refusal(s) so far)");
        }
      //--- version, request id, status code, status text, user id, metadata
      if(!SendZap(CB_ZAP_VERSION,true) || !SendZapBytes(requestId,true) || !SendZap(status,true) ||
         !SendZap(text,true) || !SendZap(status=="200" ? client : "",true) || !SendZap("",false))
         PrintFormat("copybridge: cannot answer a ZAP request: %s",Zmq::errorMessage());
      return(true);
     }

   void              Close(void)
     {
      if(CheckPointer(m_zap)==POINTER_DYNAMIC)
         delete m_zap;
      m_zap=NULL;
     }
  };
//+------------------------------------------------------------------+
