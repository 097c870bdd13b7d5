//+------------------------------------------------------------------+
//| CopyBridge/Orders.mqh                                            |
//| copybridge MT4 EA: orders as the protocol writes them (TRADE,    |
//| CLOSED), the EA's clock, MQL4 error texts, `from #`/`to #` links.|
//+------------------------------------------------------------------+
#property strict

#include "Json.mqh"

#define CB_OP_BALANCE 6
#define CB_LOT_DIGITS 2
#define CB_MONEY_DIGITS 2

//--- one order of the open or history pool, as OrderSelect shows it
struct CbOrder
  {
   int               ticket;
   string            symbol;
   int               type;
   double            lots;
   double            open_price;
   datetime          open_time;
   double            sl;
   double            tp;
   int               magic;
   string            comment;
   double            close_price;
   datetime          close_time;
   double            profit;
   double            swap;
   double            commission;
  };

//--- the order selected by OrderSelect into `o`
void CbReadSelected(CbOrder &o)
  {
   o.ticket=OrderTicket();
   o.symbol=OrderSymbol();
   o.type=OrderType();
   o.lots=OrderLots();
   o.open_price=OrderOpenPrice();
   o.open_time=OrderOpenTime();
   o.sl=OrderStopLoss();
   o.tp=OrderTakeProfit();
   o.magic=OrderMagicNumber();
   o.comment=OrderComment();
   o.close_price=OrderClosePrice();
   o.close_time=OrderCloseTime();
   o.profit=OrderProfit();
   o.swap=OrderSwap();
   o.commission=OrderCommission();
  }

//--- the decimals prices of `symbol` are written with (8 when the terminal does not know the symbol)
int CbDigits(const string symbol)
  {
   if(symbol=="")
      return(CB_MONEY_DIGITS);   // a balance operation: no prices
   double point=MarketInfo(symbol,MODE_POINT);
   if(point<=0)
      return(8);
   return((int)MarketInfo(symbol,MODE_DIGITS));
  }

string CbTimeString(const datetime t)
  {
   return(TimeToString(t,TIME_DATE|TIME_SECONDS));
  }

//--- the protocol's TRADE fields of `o`, with `lots` (a scan reports the lots an order was created with)
void CbAddTrade(CbJson &w,const CbOrder &o,const double lots)
  {
   int digits=CbDigits(o.symbol);
   w.Int("ticket",o.ticket);
   w.Str("symbol",o.symbol);
   w.Int("type",o.type);
   w.Num("lots",lots,CB_LOT_DIGITS);
   w.Num("open_price",o.open_price,digits);
   w.Str("open_time",CbTimeString(o.open_time));
   w.Int("open_time_msc",(long)o.open_time*1000);
   w.Num("sl",o.sl,digits);
   w.Num("tp",o.tp,digits);
   w.Int("magic",o.magic);
   w.Str("comment",o.comment);
   w.Num("profit",o.profit,CB_MONEY_DIGITS);
   w.Num("swap",o.swap,CB_MONEY_DIGITS);
   w.Num("commission",o.commission,CB_MONEY_DIGITS);
  }

//--- the protocol's CLOSED fields of a history order (a closed trade or a balance operation)
void CbAddClosed(CbJson &w,const CbOrder &o)
  {
   CbAddTrade(w,o,o.lots);
   w.Num("close_price",o.close_price,CbDigits(o.symbol));
   w.Str("close_time",CbTimeString(o.close_time));
   w.Int("close_time_msc",(long)o.close_time*1000);
  }

//--- the result of OPEN (and of LOOKUP for an OPEN) for an order
string CbOpenedJson(const CbOrder &o)
  {
   int digits=CbDigits(o.symbol);
   CbJson w;
   w.Int("ticket",o.ticket);
   w.Str("symbol",o.symbol);
   w.Int("type",o.type);
   w.Num("lots",o.lots,CB_LOT_DIGITS);
   w.Num("price",o.open_price,digits);
   w.Str("time",CbTimeString(o.open_time));
   w.Int("time_msc",(long)o.open_time*1000);
   w.Num("sl",o.sl,digits);
   w.Num("tp",o.tp,digits);
   w.Str("comment",o.comment);
   w.Int("magic",o.magic);
   return(w.Text());
  }

//--- the close `reason` MT4 writes into a closed order's comment
string CbCloseReason(const string comment)
  {
   if(StringFind(comment,"[sl]")>=0)
      return("sl");
   if(StringFind(comment,"[tp]")>=0)
      return("tp");
   if(StringFind(comment,"so:")==0)
      return("so");
   return("client");
  }

//--- N when `comment` is exactly `prefix` followed by the digits of N ("from #8765", "to #8766"), else 0
int CbLink(const string comment,const string prefix)
  {
   int p=StringLen(prefix);
   int n=StringLen(comment);
   if(n<=p || n>p+10 || StringSubstr(comment,0,p)!=prefix)
      return(0);
   for(int i=p; i<n; i++)
     {
      ushort c=StringGetCharacter(comment,i);
      if(c<'0' || c>'9')
         return(0);
     }
   long v=StringToInteger(StringSubstr(comment,p));
   if(v<=0 || v>2147483647)
      return(0);
   return((int)v);
  }

//+------------------------------------------------------------------+
//| The EA's clock: server time in ms. TimeCurrent() gives the       |
//| seconds, GetTickCount() the milliseconds since the second was    |
//| first seen; never decreasing within one EA life.                 |
//+------------------------------------------------------------------+
long g_cbClockSecond=0;
uint g_cbClockTick=0;
long g_cbClockLast=0;

long CbNowMsc(void)
  {
   long second=(long)TimeCurrent();
   uint tick=GetTickCount();
   if(second!=g_cbClockSecond)
     {
      g_cbClockSecond=second;
      g_cbClockTick=tick;
     }
   long ms=(long)(uint)(tick-g_cbClockTick);
   if(ms>999)
      ms=999;
   long now=second*1000+ms;
   if(now<g_cbClockLast)
      now=g_cbClockLast;
   g_cbClockLast=now;
   return(now);
  }

//--- milliseconds since `began` (a GetTickCount() value), across the counter's wrap
uint CbElapsed(const uint began)
  {
   return((uint)(GetTickCount()-began));
  }

//+------------------------------------------------------------------+
//| MQL4 error texts (stdlib.mqh's ErrorDescription wording), for    |
//| the replies' "text"                                              |
//+------------------------------------------------------------------+
string CbErrorText(const int code)
  {
   switch(code)
     {
      case 0:
         return("no error");
      case 1:
         return("no error returned, but the result is unknown");
      case 2:
         return("common error");
      case 3:
         return("invalid trade parameters");
      case 4:
         return("trade server is busy");
      case 6:
         return("no connection with trade server");
      case 128:
         return("trade timeout");
      case 129:
         return("invalid price");
      case 130:
         return("invalid stops");
      case 131:
         return("invalid trade volume");
      case 132:
         return("market is closed");
      case 133:
         return("trade is disabled");
      case 134:
         return("not enough money");
      case 135:
         return("price changed");
      case 136:
         return("off quotes");
      case 137:
         return("broker is busy");
      case 138:
         return("requote");
      case 146:
         return("trade context is busy");
      case 148:
         return("too many open and pending orders");
      case 4108:
         return("invalid ticket");
      case 4109:
         return("trade is not allowed in the expert properties");
      case 4110:
         return("longs are not allowed in the expert properties");
      case 4111:
         return("shorts are not allowed in the expert properties");
     }
   return("error "+IntegerToString(code));
  }

//--- the errors the EA retries for up to BusyRetryMs: server busy, broker busy, trade context busy
bool CbIsBusy(const int code)
  {
   return(code==4 || code==137 || code==146);
  }
//+------------------------------------------------------------------+
