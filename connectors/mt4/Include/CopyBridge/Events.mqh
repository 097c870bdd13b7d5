//+------------------------------------------------------------------+
//| CopyBridge/Events.mqh                                            |
//| copybridge MT4 EA: the event scanner (a diff of the open and     |
//| history pools between two timer ticks) and the event ring kept   |
//| for REPLAY (PROTOCOL.md, "Events").                              |
//|                                                                  |
//| Per scan:                                                        |
//| - a ticket that left the open pool is found in the history: if   |
//|   its comment is "to #<new>" (or an order "from #<old>"          |
//|   appeared) it was a PARTIAL close, else a CLOSE whose reason    |
//|   comes from the comment ([sl], [tp], so:, else client);         |
//| - a new market ticket that is not a remainder is an OPEN (also   |
//|   when it opened and closed between two scans: found in the      |
//|   history alone, both are reported);                             |
//| - an open ticket whose SL or TP changed is a MODIFY (a remainder |
//|   is compared with its parent);                                  |
//| - a new OP_BALANCE entry of the history is a BALANCE.            |
//| Within one scan events are ordered by the time of what they      |
//| report; within one millisecond opens first, then the history's   |
//| entries in the order they entered it, then modifies.             |
//|                                                                  |
//| MT4 may show a change in two steps (the ticket leaves the open   |
//| pool before its history entry arrives, a remainder before its    |
//| parent's entry): such a scan commits nothing and is tried again  |
//| on the next tick, for up to CB_SCAN_GRACE_MS, then goes on with  |
//| what it sees (and says so in the Experts log).                   |
//| Entries that closed before the EA started and show up later (a   |
//| wider Account History period, a late login sync) are not events. |
//+------------------------------------------------------------------+
#property strict

#include "Json.mqh"
#include "Orders.mqh"

#define CB_SCAN_GRACE_MS 3000

//+------------------------------------------------------------------+
//| The last `capacity` events of one epoch, numbered from 1         |
//+------------------------------------------------------------------+
class CbEventRing
  {
private:
   string            m_events[];
   int               m_capacity;
   long              m_seq;
public:
                     CbEventRing(void) { m_capacity=1; m_seq=0; }
   void              Reset(const int capacity)
     {
      m_capacity=(capacity<1) ? 1 : capacity;
      ArrayResize(m_events,m_capacity);
      m_seq=0;
     }
   //--- the last seq given out (0: none yet)
   long              Seq(void) const { return(m_seq); }
   //--- keeps an event numbered Seq() + 1
   void              Push(const string json)
     {
      m_seq++;
      m_events[(int)((m_seq-1)%m_capacity)]=json;
     }
   //--- every event with seq > after_seq as a JSON array; false when some of them are gone (a gap)
   bool              Since(const long after_seq,string &json) const
     {
      json="[]";
      if(after_seq>=m_seq)
         return(true);
      long held=(m_seq<m_capacity) ? m_seq : (long)m_capacity;
      long oldest=m_seq-held+1;
      if(after_seq+1<oldest)
         return(false);
      string out="[";
      for(long s=after_seq+1; s<=m_seq; s++)
        {
         if(s>after_seq+1)
            StringAdd(out,",");
         StringAdd(out,m_events[(int)((s-1)%m_capacity)]);
        }
      StringAdd(out,"]");
      json=out;
      return(true);
     }
  };

//+------------------------------------------------------------------+
//| The scanner                                                      |
//+------------------------------------------------------------------+
class CbScanner
  {
private:
   //--- the open market orders at the last committed scan
   int               m_prevTickets[];
   double            m_prevSL[];
   double            m_prevTP[];
   int               m_prevCount;
   //--- the pending orders at the last scan (a fill keeps the ticket)
   int               m_pending[];
   int               m_pendingCount;
   //--- the history pool: entries read, tickets already reported or present at the start (sorted)
   int               m_historyRead;
   int               m_seen[];
   int               m_seenCount;
   datetime          m_floor;          // TimeCurrent() when the snapshot was taken
   bool              m_waiting;
   uint              m_waitBegan;
   //--- one scan's work
   CbOrder           m_cur[];
   int               m_curCount;
   int               m_curPending[];
   int               m_curPendingCount;
   CbOrder           m_fresh[];
   int               m_freshCount;
   int               m_linkChild[];
   int               m_linkParent[];
   int               m_linkCount;
   //--- one scan's events
   long              m_evTime[];
   int               m_evRank[];
   string            m_evName[];
   string            m_evFields[];
   int               m_evOrder[];
   int               m_evCount;

   int               PrevIndex(const int ticket,const int hint) const
     {
      if(hint>=0 && hint<m_prevCount && m_prevTickets[hint]==ticket)
         return(hint);
      for(int i=0; i<m_prevCount; i++)
         if(m_prevTickets[i]==ticket)
            return(i);
      return(-1);
     }
   int               CurIndex(const int ticket) const
     {
      for(int i=0; i<m_curCount; i++)
         if(m_cur[i].ticket==ticket)
            return(i);
      return(-1);
     }
   //--- a closed market order (not a balance entry) of this scan's fresh history
   int               FreshIndex(const int ticket) const
     {
      for(int i=0; i<m_freshCount; i++)
         if(m_fresh[i].ticket==ticket && m_fresh[i].type!=CB_OP_BALANCE)
            return(i);
      return(-1);
     }
   bool              WasPending(const int ticket) const
     {
      for(int i=0; i<m_pendingCount; i++)
         if(m_pending[i]==ticket)
            return(true);
      return(false);
     }
   int               SeenPos(const int ticket) const
     {
      int lo=0;
      int hi=m_seenCount;
      while(lo<hi)
        {
         int mid=(lo+hi)/2;
         if(m_seen[mid]<ticket)
            lo=mid+1;
         else
            hi=mid;
        }
      return(lo);
     }
   bool              IsSeen(const int ticket) const
     {
      int p=SeenPos(ticket);
      return(p<m_seenCount && m_seen[p]==ticket);
     }
   void              MarkSeen(const int ticket)
     {
      int p=SeenPos(ticket);
      if(p<m_seenCount && m_seen[p]==ticket)
         return;
      ArrayResize(m_seen,m_seenCount+1,1024);
      for(int i=m_seenCount; i>p; i--)
         m_seen[i]=m_seen[i-1];
      m_seen[p]=ticket;
      m_seenCount++;
     }
   void              AddFresh(void)
     {
      ArrayResize(m_fresh,m_freshCount+1,16);
      CbReadSelected(m_fresh[m_freshCount]);
      m_freshCount++;
     }
   void              AddLink(const int child,const int parent)
     {
      ArrayResize(m_linkChild,m_linkCount+1,16);
      ArrayResize(m_linkParent,m_linkCount+1,16);
      m_linkChild[m_linkCount]=child;
      m_linkParent[m_linkCount]=parent;
      m_linkCount++;
     }
   //--- the ticket `child` was split from, 0 if none
   int               ParentOf(const int child) const
     {
      for(int i=0; i<m_linkCount; i++)
         if(m_linkChild[i]==child)
            return(m_linkParent[i]);
      return(0);
     }
   //--- the remainder split from `parent`, 0 if none
   int               ChildOf(const int parent) const
     {
      for(int i=0; i<m_linkCount; i++)
         if(m_linkParent[i]==parent)
            return(m_linkChild[i]);
      return(0);
     }
   //--- the lots `ticket` was created with: its own (closed) lots plus its remainders' chain
   double            CreatedLots(const int ticket) const
     {
      double lots=0.0;
      int t=ticket;
      for(int guard=0; guard<1000 && t>0; guard++)
        {
         int c=CurIndex(t);
         if(c>=0)
            return(lots+m_cur[c].lots);
         int f=FreshIndex(t);
         if(f<0)
            break;
         lots+=m_fresh[f].lots;
         t=ChildOf(t);
        }
      return(lots);
     }
   void              AddEvent(const long time_msc,const int rank,const string name,const string fields)
     {
      int n=m_evCount+1;
      ArrayResize(m_evTime,n,16);
      ArrayResize(m_evRank,n,16);
      ArrayResize(m_evName,n,16);
      ArrayResize(m_evFields,n,16);
      m_evTime[m_evCount]=time_msc;
      m_evRank[m_evCount]=rank;
      m_evName[m_evCount]=name;
      m_evFields[m_evCount]=fields;
      m_evCount=n;
     }
   //--- m_evOrder: the events sorted by (time, rank, order added) (insertion sort: a scan has few)
   void              SortEvents(void)
     {
      ArrayResize(m_evOrder,m_evCount);
      for(int i=0; i<m_evCount; i++)
        {
         int j=i;
         while(j>0)
           {
            int p=m_evOrder[j-1];
            if(m_evTime[p]<m_evTime[i] || (m_evTime[p]==m_evTime[i] && m_evRank[p]<=m_evRank[i]))
               break;
            m_evOrder[j]=p;
            j--;
           }
         m_evOrder[j]=i;
        }
     }
   bool              LevelChanged(const string symbol,const double before,const double now) const
     {
      double point=MarketInfo(symbol,MODE_POINT);
      if(point<=0)
         point=0.00000001;
      return(MathAbs(before-now)>point/2.0);
     }
   //--- this scan's open market orders and pending tickets
   void              ReadOpen(void)
     {
      m_curCount=0;
      m_curPendingCount=0;
      int total=OrdersTotal();
      ArrayResize(m_cur,total);
      ArrayResize(m_curPending,total);
      for(int i=0; i<total; i++)
        {
         if(!OrderSelect(i,SELECT_BY_POS,MODE_TRADES))
            continue;
         int type=OrderType();
         if(type==OP_BUY || type==OP_SELL)
           {
            CbReadSelected(m_cur[m_curCount]);
            m_curCount++;
           }
         else
            m_curPending[m_curPendingCount++]=OrderTicket();
        }
     }
   void              CommitPending(void)
     {
      ArrayResize(m_pending,m_curPendingCount);
      for(int i=0; i<m_curPendingCount; i++)
         m_pending[i]=m_curPending[i];
      m_pendingCount=m_curPendingCount;
     }
   void              CommitOpen(void)
     {
      ArrayResize(m_prevTickets,m_curCount);
      ArrayResize(m_prevSL,m_curCount);
      ArrayResize(m_prevTP,m_curCount);
      for(int i=0; i<m_curCount; i++)
        {
         m_prevTickets[i]=m_cur[i].ticket;
         m_prevSL[i]=m_cur[i].sl;
         m_prevTP[i]=m_cur[i].tp;
        }
      m_prevCount=m_curCount;
     }
   //--- nothing changed since the last committed scan (the common case: checked every tick)
   bool              Unchanged(const int historyTotal) const
     {
      if(historyTotal!=m_historyRead || m_curCount!=m_prevCount)
         return(false);
      for(int i=0; i<m_curCount; i++)
        {
         int p=PrevIndex(m_cur[i].ticket,i);
         if(p<0)
            return(false);
         if(LevelChanged(m_cur[i].symbol,m_prevSL[p],m_cur[i].sl) || LevelChanged(m_cur[i].symbol,m_prevTP[p],m_cur[i].tp))
            return(false);
        }
      return(true);
     }

public:
                     CbScanner(void)
     {
      m_prevCount=0;
      m_pendingCount=0;
      m_historyRead=0;
      m_seenCount=0;
      m_floor=0;
      m_waiting=false;
      m_waitBegan=0;
      m_curCount=0;
      m_curPendingCount=0;
      m_freshCount=0;
      m_linkCount=0;
      m_evCount=0;
     }

   //--- the starting state: what is open and in the history now is not an event
   void              Snapshot(void)
     {
      ReadOpen();
      CommitOpen();
      CommitPending();
      m_historyRead=OrdersHistoryTotal();
      ArrayResize(m_seen,m_historyRead,1024);
      m_seenCount=0;
      for(int i=0; i<m_historyRead; i++)
         if(OrderSelect(i,SELECT_BY_POS,MODE_HISTORY))
            m_seen[m_seenCount++]=OrderTicket();
      ArrayResize(m_seen,m_seenCount,1024);
      if(m_seenCount>1)
         ArraySort(m_seen,m_seenCount,0,MODE_ASCEND);
      m_floor=TimeCurrent();
      m_waiting=false;
      m_evCount=0;
     }

   //--- one scan: the number of events found (read them with EventTime/EventName/EventFields)
   int               Scan(const long now_msc)
     {
      CbJson w;
      m_evCount=0;
      m_freshCount=0;
      m_linkCount=0;
      ReadOpen();
      int historyTotal=OrdersHistoryTotal();
      if(Unchanged(historyTotal))
        {
         CommitPending();
         m_waiting=false;
         return(0);
        }
      //--- the history entries that arrived since the last scan
      if(historyTotal!=m_historyRead)
        {
         //--- a shorter pool (the Account History period was changed): read it all again
         int from=(historyTotal>m_historyRead) ? m_historyRead : 0;
         for(int pos=from; pos<historyTotal; pos++)
           {
            if(!OrderSelect(pos,SELECT_BY_POS,MODE_HISTORY))
               continue;
            int type=OrderType();
            if(type!=OP_BUY && type!=OP_SELL && type!=CB_OP_BALANCE)
               continue;   // a deleted pending order, a credit
            int ticket=OrderTicket();
            if(IsSeen(ticket) || FreshIndex(ticket)>=0)
               continue;
            if(PrevIndex(ticket,-1)<0 && OrderCloseTime()<m_floor)
               continue;   // closed before this EA started: shown by a wider history period
            AddFresh();
           }
        }
      bool consistent=true;
      //--- tickets that left the open pool: their history entries
      for(int i=0; i<m_prevCount; i++)
        {
         int ticket=m_prevTickets[i];
         if(CurIndex(ticket)>=0 || FreshIndex(ticket)>=0)
            continue;
         if(OrderSelect(ticket,SELECT_BY_TICKET) && OrderCloseTime()>0 && !IsSeen(ticket))
            AddFresh();
         else
            consistent=false;   // its history entry has not arrived yet
        }
      //--- partial closes: "to #<new>" on the closed part, "from #<old>" on the remainder
      for(int i=0; i<m_freshCount; i++)
        {
         if(m_fresh[i].type==CB_OP_BALANCE)
            continue;
         int child=CbLink(m_fresh[i].comment,"to #");
         if(child>0)
            AddLink(child,m_fresh[i].ticket);
        }
      for(int i=0; i<m_curCount+m_freshCount; i++)
        {
         bool is_open=(i<m_curCount);
         int k=is_open ? i : i-m_curCount;
         int ticket=is_open ? m_cur[k].ticket : m_fresh[k].ticket;
         string comment=is_open ? m_cur[k].comment : m_fresh[k].comment;
         if(!is_open && m_fresh[k].type==CB_OP_BALANCE)
            continue;
         int old=CbLink(comment,"from #");
         if(old>0 && FreshIndex(old)>=0 && ParentOf(ticket)==0)
            AddLink(ticket,old);
        }
      //--- a half-seen change: a remainder whose parent's entry has not arrived, or the other way round
      for(int i=0; i<m_linkCount; i++)
         if(CurIndex(m_linkChild[i])<0 && FreshIndex(m_linkChild[i])<0)
            consistent=false;
      for(int i=0; i<m_curCount; i++)
        {
         int old=CbLink(m_cur[i].comment,"from #");
         if(old>0 && ParentOf(m_cur[i].ticket)==0 && PrevIndex(old,-1)>=0)
            consistent=false;
        }
      if(!consistent)
        {
         if(!m_waiting)
           {
            m_waiting=true;
            m_waitBegan=GetTickCount();
           }
         if(CbElapsed(m_waitBegan)<CB_SCAN_GRACE_MS)
           {
            m_freshCount=0;
            m_linkCount=0;
            return(0);   // nothing committed: the next tick scans again
           }
         Print("copybridge: the open and history pools disagree for ",CB_SCAN_GRACE_MS,
               " ms; reporting what they show (the bridge's reconcile will see any drift)");
        }
      m_waiting=false;
      //--- opened and closed between two scans (found in the history alone)
      for(int i=0; i<m_freshCount; i++)
        {
         if(m_fresh[i].type==CB_OP_BALANCE)
            continue;
         if(PrevIndex(m_fresh[i].ticket,-1)<0 && ParentOf(m_fresh[i].ticket)==0)
           {
            w.Reset();
            CbAddTrade(w,m_fresh[i],CreatedLots(m_fresh[i].ticket));
            AddEvent((long)m_fresh[i].open_time*1000,0,"open",w.Inner());
           }
        }
      //--- the history's new entries, in the order they entered it
      for(int i=0; i<m_freshCount; i++)
        {
         w.Reset();
         long at=(long)m_fresh[i].close_time*1000;
         if(m_fresh[i].type==CB_OP_BALANCE)
           {
            w.Int("ticket",m_fresh[i].ticket);
            w.Num("amount",m_fresh[i].profit,CB_MONEY_DIGITS);
            w.Str("comment",m_fresh[i].comment);
            AddEvent(at,1,"balance",w.Inner());
            continue;
           }
         int child=ChildOf(m_fresh[i].ticket);
         if(child>0)
           {
            w.Int("ticket",m_fresh[i].ticket);
            w.Num("closed_lots",m_fresh[i].lots,CB_LOT_DIGITS);
            w.Num("close_price",m_fresh[i].close_price,CbDigits(m_fresh[i].symbol));
            w.Int("remainder",child);
            w.Num("remainder_lots",CreatedLots(child),CB_LOT_DIGITS);
            w.Str("symbol",m_fresh[i].symbol);
            w.Int("type",m_fresh[i].type);
            w.Num("profit",m_fresh[i].profit,CB_MONEY_DIGITS);
            AddEvent(at,1,"partial",w.Inner());
           }
         else
           {
            CbAddClosed(w,m_fresh[i]);
            w.Str("reason",CbCloseReason(m_fresh[i].comment));
            AddEvent(at,1,"close",w.Inner());
           }
        }
      //--- the open pool: new tickets, changed levels
      for(int i=0; i<m_curCount; i++)
        {
         int ticket=m_cur[i].ticket;
         int before=PrevIndex(ticket,i);
         int parent=ParentOf(ticket);
         if(before<0 && parent==0)
           {
            //--- an order older than this EA that the terminal shows late (login sync) is not news
            if(m_cur[i].open_time<m_floor && !WasPending(ticket))
               continue;
            w.Reset();
            CbAddTrade(w,m_cur[i],m_cur[i].lots);
            AddEvent((long)m_cur[i].open_time*1000,0,"open",w.Inner());
            continue;
           }
         if(before<0)
            before=PrevIndex(parent,-1);
         if(before>=0 && (LevelChanged(m_cur[i].symbol,m_prevSL[before],m_cur[i].sl) ||
                          LevelChanged(m_cur[i].symbol,m_prevTP[before],m_cur[i].tp)))
           {
            int digits=CbDigits(m_cur[i].symbol);
            w.Reset();
            w.Int("ticket",ticket);
            w.Str("symbol",m_cur[i].symbol);
            w.Int("type",m_cur[i].type);
            w.Num("lots",m_cur[i].lots,CB_LOT_DIGITS);
            w.Num("sl",m_cur[i].sl,digits);
            w.Num("tp",m_cur[i].tp,digits);
            AddEvent(now_msc,2,"modify",w.Inner());
           }
        }
      //--- commit
      CommitOpen();
      CommitPending();
      m_historyRead=historyTotal;
      for(int i=0; i<m_freshCount; i++)
         MarkSeen(m_fresh[i].ticket);
      SortEvents();
      return(m_evCount);
     }

   //--- the i-th event of the last scan, in publishing order
   long              EventTime(const int i) const { return(m_evTime[m_evOrder[i]]); }
   string            EventName(const int i) const { return(m_evName[m_evOrder[i]]); }
   string            EventFields(const int i) const { return(m_evFields[m_evOrder[i]]); }
  };
//+------------------------------------------------------------------+
