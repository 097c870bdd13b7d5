//+------------------------------------------------------------------+
//| CopyBridgeEA.mq4                                                 |
//| copybridge: the MetaTrader 4 end of the bridge                   |
//+------------------------------------------------------------------+
//| WHAT IT IS                                                       |
//| MT4 has no Python API. This Expert Advisor runs in each MT4      |
//| terminal (one per logged-in account) and serves the bridge over  |
//| ZeroMQ, as connectors/mt4/PROTOCOL.md (protocol version 1)       |
//| specifies; connectors/mt4/protocol.py holds the same constants,  |
//| and `bridge sim mt4` (connectors/mt4/simulator/) is the reference|
//| implementation it must match:                                    |
//| - a ROUTER socket (CommandEndpoint) takes one JSON command per   |
//|   message and answers each with exactly one JSON reply;          |
//| - a PUB socket (EventEndpoint) publishes trade events (topic     |
//|   "ev": open, partial, close, modify, balance, numbered by epoch |
//|   and seq) found by diffing the open and history pools on every |
//|   timer tick, and heartbeats (topic "hb");                       |
//| - executed trades are journalled (MQL4/Files/<JournalFile>, one  |
//|   JSON line, flushed BEFORE the reply is sent), so a command     |
//|   resent with the same key is answered from the journal          |
//|   ("repeat": true) and never trades twice.                       |
//|                                                                  |
//| INSTALL                                                          |
//| 1. From github.com/dingmaotu/mql-zmq (current master: it has     |
//|    Socket::sendMore): copy Include/Zmq and Include/Mql into      |
//|    <data folder>/MQL4/Include/, and Library/MT4/libzmq.dll and   |
//|    Library/MT4/libsodium.dll into <data folder>/MQL4/Libraries/  |
//|    (the DLLs need the Visual C++ 2015 runtime).                  |
//| 2. Copy connectors/mt4/Include/CopyBridge into MQL4/Include/ and |
//|    this file into MQL4/Experts/; compile it in MetaEditor (F7).  |
//| 3. Tools > Options > Expert Advisors: allow automated trading    |
//|    and allow DLL imports (or tick both on the EA's Common tab).  |
//| 4. Attach the EA to any one chart of the account (the symbol and |
//|    timeframe do not matter; one EA per terminal) and set the     |
//|    inputs: CommandEndpoint / EventEndpoint (must match the       |
//|    venue's endpoints in bridge.toml), TimerMs, HeartbeatMs,      |
//|    MaxCommandsPerTick, BusyRetryMs, JournalFile ("<login>" is    |
//|    replaced by the account number), CurveSecretFile and          |
//|    CurveClientsFile (see SECURITY).                              |
//| See connectors/mt4/EA.md for what was and was not verified and   |
//| how to smoke-test the EA against the bridge.                     |
//|                                                                  |
//| SECURITY (PROTOCOL.md, "Security"; EA.md, "CURVE")               |
//| Whoever reaches the command port can trade the account. By       |
//| default the EA binds 127.0.0.1 only. To serve a bridge on        |
//| another host it MUST use ZeroMQ CURVE (it refuses to bind a      |
//| non-loopback endpoint without it):                               |
//| - on the bridge host: `bridge keys generate --name ea-<login>`   |
//|   and `bridge keys generate --name bridge`;                      |
//| - copy ea-<login>.key into <data folder>/MQL4/Files/ and set     |
//|   CurveSecretFile to its name (the key is read from that file,   |
//|   never typed into the inputs: inputs are shown in the dialog    |
//|   and saved with the chart, templates and .set files);           |
//| - put the bridge's public key (bridge.pub) in a file in          |
//|   MQL4/Files/ and set CurveClientsFile to its name: only those   |
//|   clients get in (ZAP). Without it any client that knows the     |
//|   EA's public key gets in (encrypted, server authenticated).     |
//| Any MQL program of the terminal can read MQL4/Files: keep the    |
//| terminal's data folder to the trading user (NTFS permissions).   |
//+------------------------------------------------------------------+
#property copyright "copybridge contributors"
#property version   "1.00"
#property description "copybridge: serves the bridge over ZeroMQ (connectors/mt4/PROTOCOL.md, version 1)"
#property strict

#include <Zmq/Zmq.mqh>
#include <CopyBridge/Json.mqh>
#include <CopyBridge/Orders.mqh>
#include <CopyBridge/Journal.mqh>
#include <CopyBridge/Events.mqh>
#include <CopyBridge/Curve.mqh>

//--- inputs
input string CommandEndpoint="tcp://127.0.0.1:32780";     // ROUTER: commands in, replies out (off loopback: CURVE)
input string EventEndpoint="tcp://127.0.0.1:32781";       // PUB: events ("ev") and heartbeats ("hb")
input int    TimerMs=1;                                   // timer period (ms): commands, then a scan
input int    HeartbeatMs=500;                             // heartbeat period (ms)
input int    MaxCommandsPerTick=20;                       // commands handled per timer tick
input int    BusyRetryMs=500;                             // retry busy server/context (4, 137, 146) this long
input string JournalFile="copybridge-<login>.journal";    // result journal in MQL4/Files
input string CurveSecretFile="";                          // CURVE: the EA's secret key, a file in MQL4/Files ("": none)
input string CurveClientsFile="";                         // CURVE: client public keys let in, MQL4/Files ("": any)

//--- protocol constants (connectors/mt4/protocol.py)
#define CB_PROTOCOL_VERSION 1
#define CB_JOURNAL_MEMORY   10000
#define CB_EVENT_RING       10000
#define CB_MAX_ENVELOPE     8
#define CB_PUB_HWM          100000

#define CB_TOPIC_EVENT      "ev"
#define CB_TOPIC_HEARTBEAT  "hb"

#define CB_BAD_FRAME        "bad-frame"
#define CB_UNKNOWN_COMMAND  "unknown-command"
#define CB_UNKNOWN_SYMBOL   "unknown-symbol"
#define CB_NOT_FOUND        "not-found"

#define CB_ERR_COMMON_ERROR             2
#define CB_ERR_INVALID_TRADE_PARAMETERS 3
#define CB_ERR_INVALID_TRADE_VOLUME     131
#define CB_ERR_REQUOTE                  138
#define CB_ERR_NO_RESULT                1

//--- one frame of a message's envelope (the ROUTER's identity, and anything a client put before the command)
struct CbFrame
  {
   uchar             bytes[];
  };

//--- state
Context     g_context;            // one ZeroMQ context for the EA's life (mql-zmq)
Socket     *g_router=NULL;
Socket     *g_pub=NULL;
CbJournal   g_journal;
CbEventRing g_ring;
CbScanner   g_scanner;
CbCurve     g_curve;              // CURVE keys and the ZAP handler (Curve.mqh)
string      g_epoch="";
bool        g_ready=false;        // journal read and snapshot taken (needs the account number)
bool        g_startWarned=false;
uint        g_lastHeartbeat=0;
long        g_badFrames=0;
long        g_answered=0;
long        g_published=0;
long        g_sendErrors=0;
//--- the failure of the command being handled: the reply's "error" (JSON: a number or a string) and "text"
string      g_failCode="";
string      g_failText="";
string      g_cmdName="";

//+------------------------------------------------------------------+
//| Expert initialization                                            |
//+------------------------------------------------------------------+
int OnInit()
  {
   if(!MQLInfoInteger(MQL_DLLS_ALLOWED))
     {
      Print("copybridge: allow DLL imports (the EA's Common tab) - libzmq.dll is needed");
      return(INIT_FAILED);
     }
   if(TimerMs<1 || HeartbeatMs<1 || MaxCommandsPerTick<1 || BusyRetryMs<0)
     {
      Print("copybridge: TimerMs, HeartbeatMs and MaxCommandsPerTick must be at least 1, BusyRetryMs at least 0");
      return(INIT_PARAMETERS_INCORRECT);
     }
   g_ready=false;
   g_startWarned=false;
   g_badFrames=0;
   g_answered=0;
   g_published=0;
   g_sendErrors=0;
   g_epoch=MakeEpoch();
   g_ring.Reset(CB_EVENT_RING);
   if(!g_curve.Load(CurveSecretFile,CurveClientsFile,CommandEndpoint,EventEndpoint))
      return(INIT_PARAMETERS_INCORRECT);

//--- the ZAP handler first: a CURVE socket bound before it would let any client key in
   if(!g_curve.StartZap(g_context))
      return(INIT_FAILED);
   g_router=new Socket(g_context,ZMQ_ROUTER);
   g_pub=new Socket(g_context,ZMQ_PUB);
   g_router.setLinger(0);
   g_pub.setLinger(0);
   g_pub.setSendHighWaterMark(CB_PUB_HWM);
   if(!g_curve.Serve(g_router) || !g_curve.Serve(g_pub))
     {
      CloseSockets();
      return(INIT_FAILED);
     }
   if(!BindRetry(g_router,CommandEndpoint) || !BindRetry(g_pub,EventEndpoint))
     {
      CloseSockets();
      return(INIT_FAILED);
     }
   TryStart();
   if(!EventSetMillisecondTimer(TimerMs))
     {
      PrintFormat("copybridge: cannot set a %d ms timer (error %d)",TimerMs,GetLastError());
      CloseSockets();
      g_journal.Close();
      return(INIT_FAILED);
     }
   PublishHeartbeat();
   return(INIT_SUCCEEDED);
  }

//+------------------------------------------------------------------+
//| Expert deinitialization                                          |
//+------------------------------------------------------------------+
void OnDeinit(const int reason)
  {
   EventKillTimer();
   CloseSockets();
   g_journal.Close();
   g_ready=false;
   Print("copybridge: stopped (reason ",reason,"): ",g_answered," replies, ",g_published," events, ",
         g_badFrames," bad frames, ",g_sendErrors," send errors; epoch ",g_epoch," seq ",g_ring.Seq(),
         "; CURVE clients let in ",g_curve.AllowedCount(),", refused ",g_curve.Refused());
  }

//+------------------------------------------------------------------+
//| Everything happens on the timer                                  |
//+------------------------------------------------------------------+
void OnTick()
  {
  }

void OnTimer()
  {
//--- a new connection's CURVE handshake waits for the ZAP handler's answer
   for(int z=0; z<MaxCommandsPerTick; z++)
      if(!g_curve.PollZap())
         break;
   if(TryStart())
     {
      for(int i=0; i<MaxCommandsPerTick; i++)
         if(!ServeOne())
            break;
      PublishEvents();
     }
   if(CbElapsed(g_lastHeartbeat)>=(uint)HeartbeatMs)
      PublishHeartbeat();
  }

//+------------------------------------------------------------------+
//| Start: the journal and the snapshot need the account number      |
//+------------------------------------------------------------------+
bool TryStart()
  {
   if(g_ready)
      return(true);
   int login=AccountNumber();
   if(login==0)
     {
      if(!g_startWarned)
         Print("copybridge: waiting for the terminal to log in (commands wait in the queue)");
      g_startWarned=true;
      return(false);
     }
   string file=JournalFile;
   StringReplace(file,"<login>",IntegerToString(login));
   if(!g_journal.Open(file,CB_JOURNAL_MEMORY))
     {
      if(!g_startWarned)
         PrintFormat("copybridge: the journal %s cannot be opened: no command is served until it can",file);
      g_startWarned=true;
      return(false);
     }
   g_scanner.Snapshot();
   g_ready=true;
   PrintFormat("copybridge: ready: account %d, epoch %s, commands on %s, events on %s, journal %s",
               login,g_epoch,CommandEndpoint,EventEndpoint,file);
   if(g_curve.On())
      PrintFormat("copybridge: CURVE server, public key %s (the bridge's curve_server_public), %s",
                  g_curve.PublicKey(),g_curve.Listing() ? IntegerToString(g_curve.Clients())+" client key(s) allowed"
                  : "any client that knows it gets in (no CurveClientsFile)");
   else
      Print("copybridge: no CURVE (loopback only)");
   return(true);
  }

//--- a random id for this EA life (16 hex digits)
string MakeEpoch()
  {
   MathSrand((int)(GetTickCount()^(uint)TimeLocal()^(uint)AccountNumber()));
   string s="";
   for(int i=0; i<4; i++)
     {
      int r=((MathRand()<<1)^(MathRand()>>7)^(int)((GetTickCount()>>(i*3))&0xFFFF))&0xFFFF;
      s+=StringFormat("%04x",r);
     }
   return(s);
  }

//+------------------------------------------------------------------+
//| Sockets                                                          |
//+------------------------------------------------------------------+
bool BindRetry(Socket *s,const string endpoint)
  {
//--- a socket closed by a reinit frees its port asynchronously: try for a while
   for(int attempt=0; attempt<40; attempt++)
     {
      if(s.bind(endpoint))
         return(true);
      Sleep(50);
     }
   PrintFormat("copybridge: cannot bind %s: %s",endpoint,Zmq::errorMessage());
   return(false);
  }

void CloseSockets()
  {
   if(CheckPointer(g_router)==POINTER_DYNAMIC)
      delete g_router;
   if(CheckPointer(g_pub)==POINTER_DYNAMIC)
      delete g_pub;
   g_router=NULL;
   g_pub=NULL;
   g_curve.Close();
  }

//--- one frame without waiting: false when none is waiting
bool RecvFrame(Socket *s,uchar &bytes[],bool &more)
  {
   ZmqMsg msg;
   if(!s.recv(msg,true))
      return(false);
   more=msg.more();
   ArrayFree(bytes);
   if(msg.size()>0)
      msg.getData(bytes);
   return(true);
  }

bool SendBytes(Socket *s,const uchar &bytes[],const bool more)
  {
   int n=ArraySize(bytes);
   ZmqMsg msg(n);
   if(n>0)
      msg.setData(bytes);
   if(more)
      return(s.sendMore(msg,true));
   return(s.send(msg,true));
  }

bool SendText(Socket *s,const string text,const bool more)
  {
   ZmqMsg msg(text);
   if(more)
      return(s.sendMore(msg,true));
   return(s.send(msg,true));
  }

void Publish(const string topic,const string json)
  {
   if(CheckPointer(g_pub)==POINTER_INVALID)
      return;
   if(!SendText(g_pub,topic,true) || !SendText(g_pub,json,false))
      g_sendErrors++;
  }

//+------------------------------------------------------------------+
//| Commands                                                         |
//+------------------------------------------------------------------+
//--- one message from the ROUTER: false when none is waiting
bool ServeOne()
  {
   if(CheckPointer(g_router)==POINTER_INVALID)
      return(false);
   uchar part[];
   bool more=false;
   if(!RecvFrame(g_router,part,more))
      return(false);
//--- every frame but the last is the envelope (the identity the ROUTER added, and any delimiter)
   CbFrame envelope[];
   int frames=1;
   bool broken=false;
   while(more)
     {
      if(frames<=CB_MAX_ENVELOPE)
        {
         ArrayResize(envelope,frames);
         int n=ArraySize(part);
         ArrayResize(envelope[frames-1].bytes,n);
         if(n>0)
            ArrayCopy(envelope[frames-1].bytes,part,0,0,n);
        }
      else
         broken=true;
      if(!RecvFrame(g_router,part,more))
        {
         broken=true;   // a message arrives whole: should not happen
         break;
        }
      frames++;
     }
   if(frames<2 || broken)
     {
      g_badFrames++;
      return(true);
     }
   string text=CharArrayToString(part,0,WHOLE_ARRAY,CP_UTF8);
   string reply=Answer(text);
   if(reply=="")
      return(true);
   bool sent=true;
   int count=ArraySize(envelope);
   for(int i=0; i<count && sent; i++)
      sent=SendBytes(g_router,envelope[i].bytes,true);
   if(sent)
      sent=SendText(g_router,reply,false);
   if(sent)
      g_answered++;
   else
      g_sendErrors++;
   return(true);
  }

string ReplyOk(const long id,const string result)
  {
   return("{\"id\":"+IntegerToString(id)+",\"ok\":true,\"result\":"+result+"}");
  }

string ReplyError(const long id,const string error_json,const string text)
  {
   return("{\"id\":"+IntegerToString(id)+",\"ok\":false,\"error\":"+error_json+",\"text\":"+CbQuote(text)+"}");
  }

//--- the failure of the command being handled (always returns false, for `return(Fail...)`)
bool FailCode(const int code)
  {
   g_failCode=IntegerToString(code);
   g_failText=CbErrorText(code);
   return(false);
  }

bool FailProtocol(const string code,const string text)
  {
   g_failCode=CbQuote(code);
   g_failText=text;
   return(false);
  }

//--- the reply to one frame, "" when none is sent (a frame that is not a command with an integer id)
string Answer(const string text)
  {
   CbCommand c;
   if(!c.Parse(text))
     {
      g_badFrames++;
      Print("copybridge: dropped a command frame that is not a JSON object");
      return("");
     }
   if(c.Kind("id")!=CB_J_INT)
     {
      g_badFrames++;
      Print("copybridge: dropped a command without an integer id");
      return("");
     }
   long id=c.Int("id");
   if(c.Kind("cmd")!=CB_J_STRING)
      return(ReplyError(id,CbQuote(CB_BAD_FRAME),"a command needs a string cmd"));
   int bad=c.NotFlat();
   if(bad>=0)
      return(ReplyError(id,CbQuote(CB_BAD_FRAME),"field '"+c.Name(bad)+"': commands are flat (strings and numbers only)"));
   string cmd=c.Str("cmd");
   g_cmdName=cmd;
   g_failCode=IntegerToString(CB_ERR_COMMON_ERROR);
   g_failText=CbErrorText(CB_ERR_COMMON_ERROR);
   if(cmd=="OPEN" || cmd=="CLOSE" || cmd=="MODIFY")
      return(Trade(c,id,cmd));
   string result="";
   bool ok=false;
   if(cmd=="TRADES")
      ok=CmdTrades(c,result);
   else if(cmd=="HISTORY")
      ok=CmdHistory(c,result);
   else if(cmd=="ACCOUNT")
      ok=CmdAccount(c,result);
   else if(cmd=="SYMBOL")
      ok=CmdSymbol(c,result);
   else if(cmd=="LOOKUP")
      ok=CmdLookup(c,result);
   else if(cmd=="REPLAY")
      ok=CmdReplay(c,result);
   else if(cmd=="PING")
      ok=CmdPing(c,result);
   else
      //--- including the simulator's MANUAL_* commands: the real EA trades only for the bridge
      return(ReplyError(id,CbQuote(CB_UNKNOWN_COMMAND),"unknown command '"+cmd+"'"));
   if(ok)
      return(ReplyOk(id,result));
   return(ReplyError(id,g_failCode,g_failText));
  }

//--- OPEN, CLOSE, MODIFY: exactly once by key
string Trade(CbCommand &c,const long id,const string cmd)
  {
   string key;
   if(!NeedStr(c,"key",key))
      return(ReplyError(id,g_failCode,g_failText));
   string journalled_cmd,journalled_result;
   if(g_journal.Get(key,journalled_cmd,journalled_result))
      return("{\"id\":"+IntegerToString(id)+",\"ok\":true,\"result\":"+journalled_result+",\"repeat\":true}");
   string result="";
   bool ok=false;
   if(cmd=="OPEN")
      ok=CmdOpen(c,key,result);
   else if(cmd=="CLOSE")
      ok=CmdClose(c,result);
   else
      ok=CmdModify(c,result);
//--- a refused command traded nothing: not journalled, a resend with the same key tries again
   if(!ok)
      return(ReplyError(id,g_failCode,g_failText));
   string reply=ReplyOk(id,result);
   g_journal.Record(key,cmd,reply,result);   // flushed before the reply is sent
   return(reply);
  }

//+------------------------------------------------------------------+
//| Command fields (a missing or mistyped field: "bad-frame")        |
//+------------------------------------------------------------------+
bool NeedStr(CbCommand &c,const string name,string &value)
  {
   int kind=c.Kind(name);
   if(kind==CB_J_NONE)
      return(FailProtocol(CB_BAD_FRAME,g_cmdName+" needs '"+name+"'"));
   if(kind!=CB_J_STRING)
      return(FailProtocol(CB_BAD_FRAME,"field '"+name+"' of "+g_cmdName+" must be a string"));
   value=c.Str(name);
   return(true);
  }

bool ReadInt(CbCommand &c,const string name,const bool required,const long fallback,long &value)
  {
   int kind=c.Kind(name);
   if(kind==CB_J_NONE)
     {
      if(required)
         return(FailProtocol(CB_BAD_FRAME,g_cmdName+" needs '"+name+"'"));
      value=fallback;
      return(true);
     }
   if(kind!=CB_J_INT)
      return(FailProtocol(CB_BAD_FRAME,"field '"+name+"' of "+g_cmdName+" must be a number"));
   value=c.Int(name);
   return(true);
  }

bool ReadNum(CbCommand &c,const string name,const bool required,const double fallback,double &value)
  {
   int kind=c.Kind(name);
   if(kind==CB_J_NONE)
     {
      if(required)
         return(FailProtocol(CB_BAD_FRAME,g_cmdName+" needs '"+name+"'"));
      value=fallback;
      return(true);
     }
   if(kind!=CB_J_INT && kind!=CB_J_DEC)
      return(FailProtocol(CB_BAD_FRAME,"field '"+name+"' of "+g_cmdName+" must be a number"));
   value=c.Num(name);
   return(true);
  }

bool NeedInt(CbCommand &c,const string name,long &value) { return(ReadInt(c,name,true,0,value)); }
bool OptInt(CbCommand &c,const string name,const long fallback,long &value) { return(ReadInt(c,name,false,fallback,value)); }
bool NeedNum(CbCommand &c,const string name,double &value) { return(ReadNum(c,name,true,0.0,value)); }
bool OptNum(CbCommand &c,const string name,const double fallback,double &value) { return(ReadNum(c,name,false,fallback,value)); }

//+------------------------------------------------------------------+
//| Trading helpers                                                  |
//+------------------------------------------------------------------+
bool KnownSymbol(const string symbol)
  {
   if(symbol=="")
      return(false);
   if(!SymbolSelect(symbol,true))
      return(false);
   return(MarketInfo(symbol,MODE_POINT)>0);
  }

//--- selects `ticket` when it is an open market order
bool SelectOpen(const int ticket)
  {
   if(!OrderSelect(ticket,SELECT_BY_TICKET))
      return(false);
   return(OrderCloseTime()==0 && (OrderType()==OP_BUY || OrderType()==OP_SELL));
  }

//--- lots rounded DOWN to the symbol's MODE_LOTSTEP, two decimals
double RoundLotsDown(const string symbol,const double lots)
  {
   double step=MarketInfo(symbol,MODE_LOTSTEP);
   double v=lots;
   if(step>0)
      v=MathFloor(lots/step+1e-7)*step;
   return(NormalizeDouble(v,CB_LOT_DIGITS));
  }

//--- true when `current` is more than `slippage` points worse than the bridge's reference `price` (0: no reference)
bool Requoted(const string symbol,const bool buying,const double current,const double price,const long slippage)
  {
   if(price==0)
      return(false);
   double worse=buying ? current-price : price-current;
   double point=MarketInfo(symbol,MODE_POINT);
   return(NormalizeDouble(worse-slippage*point,CbDigits(symbol))>0);
  }

//--- waits (within BusyRetryMs since `began`) while another EA holds the terminal's trade context
void WaitTradeContext(const uint began)
  {
   while(IsTradeContextBusy() && CbElapsed(began)<(uint)BusyRetryMs)
      Sleep(5);
  }

//--- the remainder of a partial close of `ticket`: "to #N" on the closed part, else an open order "from #<ticket>"
int FindRemainder(const int ticket,const string closed_comment)
  {
   int linked=CbLink(closed_comment,"to #");
   if(linked>0)
      return(linked);
   uint began=GetTickCount();
   while(true)
     {
      int total=OrdersTotal();
      for(int i=0; i<total; i++)
        {
         if(!OrderSelect(i,SELECT_BY_POS,MODE_TRADES))
            continue;
         if(CbLink(OrderComment(),"from #")==ticket)
            return(OrderTicket());
        }
      if(CbElapsed(began)>=200)
         return(0);
      Sleep(5);
     }
   return(0);
  }

//+------------------------------------------------------------------+
//| OPEN: a market order                                             |
//+------------------------------------------------------------------+
bool CmdOpen(CbCommand &c,const string key,string &result)
  {
   string symbol;
   if(!NeedStr(c,"symbol",symbol))
      return(false);
   if(!KnownSymbol(symbol))
      return(FailProtocol(CB_UNKNOWN_SYMBOL,"unknown symbol '"+symbol+"'"));
   long type=0;
   if(!NeedInt(c,"type",type))
      return(false);
   if(type!=OP_BUY && type!=OP_SELL)
      return(FailCode(CB_ERR_INVALID_TRADE_PARAMETERS));
   double lots=0,sl=0,tp=0,price=0;
   long slippage=0,magic=0;
   if(!NeedNum(c,"lots",lots) || !OptNum(c,"sl",0.0,sl) || !OptNum(c,"tp",0.0,tp) ||
      !OptNum(c,"price",0.0,price) || !OptInt(c,"slippage",0,slippage) || !OptInt(c,"magic",0,magic))
      return(false);
//--- lots: rounded down to the step, refused below the minimum and above the maximum (nothing is clamped)
   double volume=RoundLotsDown(symbol,lots);
   double min_lot=MarketInfo(symbol,MODE_MINLOT);
   double max_lot=MarketInfo(symbol,MODE_MAXLOT);
   if(volume<=0 || volume<min_lot-1e-8 || (max_lot>0 && volume>max_lot+1e-8))
      return(FailCode(CB_ERR_INVALID_TRADE_VOLUME));
   int digits=CbDigits(symbol);
   bool buying=(type==OP_BUY);
   uint began=GetTickCount();
   int ticket=-1;
   int error=0;
   double current=0;
   while(true)
     {
      WaitTradeContext(began);
      RefreshRates();
      current=buying ? MarketInfo(symbol,MODE_ASK) : MarketInfo(symbol,MODE_BID);
      if(Requoted(symbol,buying,current,price,slippage))
         return(FailCode(CB_ERR_REQUOTE));   // not sent
      ResetLastError();
      ticket=OrderSend(symbol,(int)type,volume,NormalizeDouble(current,digits),(int)slippage,
                       NormalizeDouble(sl,digits),NormalizeDouble(tp,digits),key,(int)magic,0,clrNONE);
      if(ticket>0)
         break;
      error=GetLastError();
      if(!CbIsBusy(error) || CbElapsed(began)>=(uint)BusyRetryMs)
         break;
      Sleep(10);
     }
   if(ticket<=0)
      return(FailCode(error==0 ? CB_ERR_COMMON_ERROR : error));
   CbOrder o;
   if(OrderSelect(ticket,SELECT_BY_TICKET))
      CbReadSelected(o);
   else
     {
      //--- traded, but the terminal does not show it yet: what was asked
      o.ticket=ticket;
      o.symbol=symbol;
      o.type=(int)type;
      o.lots=volume;
      o.open_price=current;
      o.open_time=TimeCurrent();
      o.sl=sl;
      o.tp=tp;
      o.magic=(int)magic;
      o.comment=key;
      o.close_price=0;
      o.close_time=0;
      o.profit=0;
      o.swap=0;
      o.commission=0;
     }
   result=CbOpenedJson(o);
   return(true);
  }

//+------------------------------------------------------------------+
//| CLOSE: a close or partial close by ticket                        |
//+------------------------------------------------------------------+
bool CmdClose(CbCommand &c,string &result)
  {
   long requested=0;
   if(!NeedInt(c,"ticket",requested))
      return(false);
   int ticket=(int)requested;
   if(!SelectOpen(ticket))
      return(FailProtocol(CB_NOT_FOUND,"ticket "+IntegerToString(requested)+" is not open"));
   string symbol=OrderSymbol();
   int type=OrderType();
   double have=OrderLots();
   double lots=0,price=0;
   long slippage=0;
   if(!OptNum(c,"lots",0.0,lots) || !OptNum(c,"price",0.0,price) || !OptInt(c,"slippage",0,slippage))
      return(false);
   double volume=have;
   if(lots!=0 && MathAbs(lots-have)>1e-8)
     {
      if(lots>have)
         return(FailCode(CB_ERR_INVALID_TRADE_VOLUME));
      volume=RoundLotsDown(symbol,lots);
      if(volume<=0)
         return(FailCode(CB_ERR_INVALID_TRADE_VOLUME));
     }
   bool partial=(volume<have-1e-8);
   int digits=CbDigits(symbol);
   bool buying=(type==OP_SELL);   // a sell is closed by buying at the Ask, a buy by selling at the Bid
   uint began=GetTickCount();
   bool closed=false;
   int error=0;
   while(true)
     {
      WaitTradeContext(began);
      RefreshRates();
      double current=buying ? MarketInfo(symbol,MODE_ASK) : MarketInfo(symbol,MODE_BID);
      if(Requoted(symbol,buying,current,price,slippage))
         return(FailCode(CB_ERR_REQUOTE));   // not sent
      ResetLastError();
      closed=OrderClose(ticket,volume,NormalizeDouble(current,digits),(int)slippage,clrNONE);
      if(closed)
         break;
      error=GetLastError();
      if(!CbIsBusy(error) || CbElapsed(began)>=(uint)BusyRetryMs)
         break;
      Sleep(10);
     }
   if(!closed)
      return(FailCode(error==0 ? CB_ERR_COMMON_ERROR : error));
//--- the closed part keeps the ticket (in the history); a partial close reopens the rest under a new ticket
   CbOrder o;
   o.lots=volume;
   o.close_price=0;
   o.close_time=TimeCurrent();
   o.profit=0;
   o.comment="";
   if(OrderSelect(ticket,SELECT_BY_TICKET))
      CbReadSelected(o);
   int remainder=0;
   double remainder_lots=0;
   if(partial)
     {
      remainder=FindRemainder(ticket,o.comment);
      if(remainder>0 && OrderSelect(remainder,SELECT_BY_TICKET))
         remainder_lots=OrderLots();
     }
   CbJson w;
   w.Int("ticket",ticket);
   w.Num("closed_lots",o.lots,CB_LOT_DIGITS);
   w.Num("price",o.close_price,digits);
   w.Str("time",CbTimeString(o.close_time));
   w.Int("time_msc",(long)o.close_time*1000);
   w.Int("remainder",remainder);
   w.Num("remainder_lots",remainder_lots,CB_LOT_DIGITS);
   w.Num("profit",o.profit,CB_MONEY_DIGITS);
   result=w.Text();
   return(true);
  }

//+------------------------------------------------------------------+
//| MODIFY: SL/TP of an open ticket                                  |
//+------------------------------------------------------------------+
bool CmdModify(CbCommand &c,string &result)
  {
   long requested=0;
   if(!NeedInt(c,"ticket",requested))
      return(false);
   int ticket=(int)requested;
   if(!SelectOpen(ticket))
      return(FailProtocol(CB_NOT_FOUND,"ticket "+IntegerToString(requested)+" is not open"));
   double sl=0,tp=0;
   if(!OptNum(c,"sl",0.0,sl) || !OptNum(c,"tp",0.0,tp))
      return(false);
   string symbol=OrderSymbol();
   double open_price=OrderOpenPrice();
   int digits=CbDigits(symbol);
   uint began=GetTickCount();
   bool modified=false;
   int error=0;
   while(true)
     {
      WaitTradeContext(began);
      ResetLastError();
      modified=OrderModify(ticket,open_price,NormalizeDouble(sl,digits),NormalizeDouble(tp,digits),0,clrNONE);
      if(modified)
         break;
      error=GetLastError();
      if(error==CB_ERR_NO_RESULT)
        {
         modified=true;   // the levels were already these: not an error
         break;
        }
      if(!CbIsBusy(error) || CbElapsed(began)>=(uint)BusyRetryMs)
         break;
      Sleep(10);
     }
   if(!modified)
      return(FailCode(error==0 ? CB_ERR_COMMON_ERROR : error));
   CbJson w;
   w.Int("ticket",ticket);
   w.Num("sl",sl,digits);
   w.Num("tp",tp,digits);
   result=w.Text();
   return(true);
  }

//+------------------------------------------------------------------+
//| Queries                                                          |
//+------------------------------------------------------------------+
bool CmdTrades(CbCommand &c,string &result)
  {
   string out="[";
   int n=0;
   int total=OrdersTotal();
   CbOrder o;
   CbJson w;
   for(int i=0; i<total; i++)
     {
      if(!OrderSelect(i,SELECT_BY_POS,MODE_TRADES))
         continue;
      if(OrderType()!=OP_BUY && OrderType()!=OP_SELL)
         continue;   // pending orders are not listed
      CbReadSelected(o);
      w.Reset();
      CbAddTrade(w,o,o.lots);
      if(n>0)
         StringAdd(out,",");
      StringAdd(out,w.Text());
      n++;
     }
   result="{\"trades\":"+out+"]}";
   return(true);
  }

bool CmdHistory(CbCommand &c,string &result)
  {
   long after=0;
   if(!OptInt(c,"after_ticket",0,after))
      return(false);
   bool by_time=c.Has("since_msc");
   long since=0;
   if(by_time && !NeedInt(c,"since_msc",since))
      return(false);
   string out="[";
   int n=0;
   int total=OrdersHistoryTotal();
   CbOrder o;
   CbJson w;
   for(int i=0; i<total; i++)
     {
      if(!OrderSelect(i,SELECT_BY_POS,MODE_HISTORY))
         continue;
      int type=OrderType();
      if(type!=OP_BUY && type!=OP_SELL && type!=CB_OP_BALANCE)
         continue;   // deleted pending orders, credit
      CbReadSelected(o);
      if(!(o.ticket>after || (by_time && (long)o.close_time*1000>=since)))
         continue;
      w.Reset();
      CbAddClosed(w,o);
      if(n>0)
         StringAdd(out,",");
      StringAdd(out,w.Text());
      n++;
     }
   result="{\"orders\":"+out+"]}";
   return(true);
  }

bool CmdAccount(CbCommand &c,string &result)
  {
   CbJson w;
   w.Int("login",AccountInfoInteger(ACCOUNT_LOGIN));
   w.Str("currency",AccountInfoString(ACCOUNT_CURRENCY));
   w.Num("balance",AccountInfoDouble(ACCOUNT_BALANCE),CB_MONEY_DIGITS);
   w.Num("equity",AccountInfoDouble(ACCOUNT_EQUITY),CB_MONEY_DIGITS);
   w.Num("margin",AccountInfoDouble(ACCOUNT_MARGIN),CB_MONEY_DIGITS);
   w.Num("free_margin",AccountInfoDouble(ACCOUNT_MARGIN_FREE),CB_MONEY_DIGITS);
   w.Int("leverage",AccountInfoInteger(ACCOUNT_LEVERAGE));
   w.Str("server",AccountInfoString(ACCOUNT_SERVER));
   w.Str("company",AccountInfoString(ACCOUNT_COMPANY));
   w.Str("name",AccountInfoString(ACCOUNT_NAME));
   result=w.Text();
   return(true);
  }

bool CmdSymbol(CbCommand &c,string &result)
  {
   string symbol;
   if(!NeedStr(c,"symbol",symbol))
      return(false);
   if(!KnownSymbol(symbol))
      return(FailProtocol(CB_UNKNOWN_SYMBOL,"unknown symbol '"+symbol+"'"));
   RefreshRates();
   int digits=(int)MarketInfo(symbol,MODE_DIGITS);
   CbJson w;
   w.Str("symbol",symbol);
   w.Int("digits",digits);
   w.Num("point",MarketInfo(symbol,MODE_POINT),digits);
   w.Num("contract_size",MarketInfo(symbol,MODE_LOTSIZE),2);
   w.Num("min_lot",MarketInfo(symbol,MODE_MINLOT),CB_LOT_DIGITS);
   w.Num("lot_step",MarketInfo(symbol,MODE_LOTSTEP),CB_LOT_DIGITS);
   w.Num("max_lot",MarketInfo(symbol,MODE_MAXLOT),CB_LOT_DIGITS);
   w.Num("tick_value",MarketInfo(symbol,MODE_TICKVALUE),8);
   w.Num("tick_size",MarketInfo(symbol,MODE_TICKSIZE),8);
   w.Int("stop_level",(long)MarketInfo(symbol,MODE_STOPLEVEL));
   w.Bool("trade_allowed",MarketInfo(symbol,MODE_TRADEALLOWED)!=0);
   w.Num("bid",MarketInfo(symbol,MODE_BID),digits);
   w.Num("ask",MarketInfo(symbol,MODE_ASK),digits);
   w.Str("base",SymbolInfoString(symbol,SYMBOL_CURRENCY_BASE));
   w.Str("quote",SymbolInfoString(symbol,SYMBOL_CURRENCY_PROFIT));
   w.Str("margin_currency",SymbolInfoString(symbol,SYMBOL_CURRENCY_MARGIN));
   result=w.Text();
   return(true);
  }

//--- the journal first; an OPEN whose journal line was never written is found by its comment (the key)
bool CmdLookup(CbCommand &c,string &result)
  {
   string key;
   if(!NeedStr(c,"key",key))
      return(false);
   string cmd,reply;
   CbJson w;
   if(g_journal.Get(key,cmd,reply))
     {
      w.Bool("found",true);
      w.Str("cmd",cmd);
      w.Raw("reply",reply);
      result=w.Text();
      return(true);
     }
   if(key!="")
     {
      CbOrder o;
      for(int pool=0; pool<2; pool++)
        {
         int which=(pool==0) ? MODE_TRADES : MODE_HISTORY;
         int total=(pool==0) ? OrdersTotal() : OrdersHistoryTotal();
         for(int i=0; i<total; i++)
           {
            if(!OrderSelect(i,SELECT_BY_POS,which))
               continue;
            if(OrderType()!=OP_BUY && OrderType()!=OP_SELL)
               continue;
            string comment=OrderComment();
            if(comment!=key && StringFind(comment,key+"[")!=0)
               continue;
            CbReadSelected(o);
            w.Bool("found",true);
            w.Str("cmd","OPEN");
            w.Raw("reply",CbOpenedJson(o));
            result=w.Text();
            return(true);
           }
        }
     }
   result="{\"found\":false}";
   return(true);
  }

bool CmdReplay(CbCommand &c,string &result)
  {
   long after=0;
   if(!NeedInt(c,"after_seq",after))
      return(false);
   string events;
   CbJson w;
   w.Str("epoch",g_epoch);
   if(g_ring.Since(after,events))
      w.Raw("events",events);
   else
      w.Bool("gap",true);
   result=w.Text();
   return(true);
  }

bool CmdPing(CbCommand &c,string &result)
  {
   result=HeartbeatJson();
   return(true);
  }

//+------------------------------------------------------------------+
//| Events and heartbeats                                            |
//+------------------------------------------------------------------+
string HeartbeatJson()
  {
   long now=CbNowMsc();
   CbJson w;
   w.Str("epoch",g_epoch);
   w.Int("seq",g_ring.Seq());
   w.Str("time",CbTimeString((datetime)(now/1000)));
   w.Int("time_msc",now);
   return(w.Text());
  }

void PublishHeartbeat()
  {
   g_lastHeartbeat=GetTickCount();
   Publish(CB_TOPIC_HEARTBEAT,HeartbeatJson());
  }

//--- one scan: its events numbered (epoch, seq), kept in the ring for REPLAY, published
void PublishEvents()
  {
   int n=g_scanner.Scan(CbNowMsc());
   CbJson w;
   for(int i=0; i<n; i++)
     {
      long at=g_scanner.EventTime(i);
      string fields=g_scanner.EventFields(i);
      w.Reset();
      w.Str("epoch",g_epoch);
      w.Int("seq",g_ring.Seq()+1);
      w.Str("ev",g_scanner.EventName(i));
      w.Str("time",CbTimeString((datetime)(at/1000)));
      w.Int("time_msc",at);
      string json=(fields=="") ? w.Text() : "{"+w.Inner()+","+fields+"}";
      g_ring.Push(json);
      Publish(CB_TOPIC_EVENT,json);
      g_published++;
     }
  }
//+------------------------------------------------------------------+
