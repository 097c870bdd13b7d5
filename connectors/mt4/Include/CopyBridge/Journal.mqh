//+------------------------------------------------------------------+
//| CopyBridge/Journal.mqh                                           |
//| copybridge MT4 EA: the result journal (PROTOCOL.md, "Exactly     |
//| once at the EA").                                                |
//|                                                                  |
//| One JSON line per executed trading command, in MQL4/Files:       |
//|   {"key":"cb...","cmd":"OPEN","reply":{"id":..,"ok":true,        |
//|    "result":{...}}}                                              |
//| appended and flushed BEFORE the reply is sent. The results of    |
//| the last `capacity` lines are held in memory; the keys of every  |
//| line are held in a hash set, so a key that is not journalled is  |
//| known without reading the file, and an old key is read back from |
//| the file. A torn last line (the EA died while writing it) is     |
//| skipped.                                                         |
//+------------------------------------------------------------------+
#property strict

#include "Json.mqh"

//+------------------------------------------------------------------+
//| A set of strings (open addressing, linear probing)               |
//+------------------------------------------------------------------+
class CbKeySet
  {
private:
   string            m_slots[];
   bool              m_used[];
   int               m_size;    // a power of two
   int               m_count;
   uint              Hash(const string s) const
     {
      uint h=5381;
      int n=StringLen(s);
      for(int i=0; i<n; i++)
         h=((h<<5)+h)+(uint)StringGetCharacter(s,i);
      return(h);
     }
   void              Place(const string key)
     {
      int mask=m_size-1;
      int i=(int)(Hash(key)&(uint)mask);
      while(m_used[i])
        {
         if(m_slots[i]==key)
            return;
         i=(i+1)&mask;
        }
      m_used[i]=true;
      m_slots[i]=key;
      m_count++;
     }
   void              Grow(void)
     {
      string old[];
      int n=0;
      ArrayResize(old,m_count);
      for(int i=0; i<m_size; i++)
         if(m_used[i])
            old[n++]=m_slots[i];
      m_size=(m_size<1024) ? 1024 : m_size*2;
      ArrayResize(m_slots,m_size);
      ArrayResize(m_used,m_size);
      for(int i=0; i<m_size; i++)
        {
         m_used[i]=false;
         m_slots[i]="";
        }
      m_count=0;
      for(int i=0; i<n; i++)
         Place(old[i]);
     }
public:
                     CbKeySet(void) { m_size=0; m_count=0; }
   void              Clear(void)
     {
      m_size=0;
      m_count=0;
      ArrayResize(m_slots,0);
      ArrayResize(m_used,0);
     }
   int               Count(void) const { return(m_count); }
   bool              Contains(const string key) const
     {
      if(m_size==0)
         return(false);
      int mask=m_size-1;
      int i=(int)(Hash(key)&(uint)mask);
      while(m_used[i])
        {
         if(m_slots[i]==key)
            return(true);
         i=(i+1)&mask;
        }
      return(false);
     }
   void              Add(const string key)
     {
      if((m_count+1)*2>m_size)
         Grow();
      Place(key);
     }
  };

//+------------------------------------------------------------------+
//| The result journal                                               |
//+------------------------------------------------------------------+
class CbJournal
  {
private:
   string            m_file;
   int               m_handle;      // the append handle, open for the EA's life
   int               m_capacity;
   string            m_keys[];      // a ring of the last m_capacity entries
   string            m_cmds[];
   string            m_results[];
   int               m_next;
   int               m_count;
   CbKeySet          m_all;         // the keys of every line of the file
   int               m_lines;       // lines in the file (read at start plus appended)
   int               m_writeErrors;

   void              Remember(const string key,const string cmd,const string result)
     {
      m_keys[m_next]=key;
      m_cmds[m_next]=cmd;
      m_results[m_next]=result;
      m_next=(m_next+1)%m_capacity;
      if(m_count<m_capacity)
         m_count++;
     }
   //--- the key, cmd and result of one journal line; false for a torn or foreign line
   bool              ParseLine(const string line,string &key,string &cmd,string &result)
     {
      string t=line;
      if(CbAt(t,0)==0xFEFF)
         t=StringSubstr(t,1);
      string names[];
      int starts[];
      int ends[];
      int kinds[];
      int end=0;
      int n=CbObjectMembers(t,0,end,names,starts,ends,kinds);
      if(n<0 || CbSkipWs(t,end)!=StringLen(t))
         return(false);
      int k=CbFindName(names,n,"key");
      int c=CbFindName(names,n,"cmd");
      int r=CbFindName(names,n,"reply");
      if(k<0 || c<0 || r<0 || kinds[k]!=CB_J_STRING || kinds[c]!=CB_J_STRING || kinds[r]!=CB_J_OBJECT)
         return(false);
      key=CbDecodeString(t,starts[k],ends[k]);
      cmd=CbDecodeString(t,starts[c],ends[c]);
      string reply=StringSubstr(t,starts[r],ends[r]-starts[r]);
      int rn=CbObjectMembers(reply,0,end,names,starts,ends,kinds);
      if(rn<0)
         return(false);
      int ok=CbFindName(names,rn,"ok");
      int res=CbFindName(names,rn,"result");
      if(ok<0 || res<0 || kinds[res]!=CB_J_OBJECT || StringSubstr(reply,starts[ok],ends[ok]-starts[ok])!="true")
         return(false);
      result=StringSubstr(reply,starts[res],ends[res]-starts[res]);
      return(true);
     }
   //--- the key of a line as this EA writes it ({"key":"...",...}) without parsing the whole line
   bool              QuickKey(const string line,string &key)
     {
      string head="{\"key\":\"";
      int from=StringLen(head);
      if(StringFind(line,head)!=0)
         return(false);
      int close=StringFind(line,"\"",from);
      if(close<0)
         return(false);
      key=StringSubstr(line,from,close-from);
      return(StringFind(key,"\\")<0);
     }
   string            StripEol(const string line)
     {
      string s=line;
      int n=StringLen(s);
      while(n>0 && (StringGetCharacter(s,n-1)=='\r' || StringGetCharacter(s,n-1)=='\n'))
         n--;
      return(StringSubstr(s,0,n));
     }
   //--- true when the file exists, is not empty and does not end with a line feed (a torn last line)
   bool              EndsTorn(void)
     {
      if(!FileIsExist(m_file))
         return(false);
      int h=FileOpen(m_file,FILE_READ|FILE_BIN|FILE_SHARE_READ|FILE_SHARE_WRITE);
      if(h==INVALID_HANDLE)
         return(false);
      bool torn=false;
      ulong size=FileSize(h);
      if(size>0)
        {
         FileSeek(h,-1,SEEK_END);
         torn=(FileReadInteger(h,CHAR_VALUE)!='\n');
        }
      FileClose(h);
      return(torn);
     }

public:
                     CbJournal(void)
     {
      m_handle=INVALID_HANDLE;
      m_capacity=1;
      m_next=0;
      m_count=0;
      m_lines=0;
      m_writeErrors=0;
     }
                    ~CbJournal(void) { Close(); }

   //--- reads the file back (the last `capacity` results into memory) and opens it for appending
   bool              Open(const string file,const int capacity)
     {
      Close();
      m_file=file;
      m_capacity=(capacity<1) ? 1 : capacity;
      ArrayResize(m_keys,m_capacity);
      ArrayResize(m_cmds,m_capacity);
      ArrayResize(m_results,m_capacity);
      m_next=0;
      m_count=0;
      m_lines=0;
      m_all.Clear();
      if(FileIsExist(m_file))
        {
         int h=FileOpen(m_file,FILE_READ|FILE_TXT|FILE_ANSI|FILE_SHARE_READ|FILE_SHARE_WRITE,0,CP_UTF8);
         if(h==INVALID_HANDLE)
           {
            PrintFormat("copybridge: cannot read the journal %s (error %d)",m_file,GetLastError());
            return(false);
           }
         //--- one pass: every key into the set, the last `capacity` lines kept raw, parsed at the end
         string tail[];
         ArrayResize(tail,m_capacity);
         int kept=0;
         int at=0;
         while(!FileIsEnding(h))
           {
            string line=StripEol(FileReadString(h));
            if(StringLen(line)==0)
               continue;
            m_lines++;
            string key="";
            if(!QuickKey(line,key))
              {
               string cmd,result;
               if(!ParseLine(line,key,cmd,result))
                  continue;
              }
            m_all.Add(key);
            tail[at]=line;
            at=(at+1)%m_capacity;
            if(kept<m_capacity)
               kept++;
           }
         FileClose(h);
         int first=(kept<m_capacity) ? 0 : at;
         for(int i=0; i<kept; i++)
           {
            string key,cmd,result;
            if(ParseLine(tail[(first+i)%m_capacity],key,cmd,result))
               Remember(key,cmd,result);
           }
        }
      bool torn=EndsTorn();
      m_handle=FileOpen(m_file,FILE_READ|FILE_WRITE|FILE_TXT|FILE_ANSI|FILE_SHARE_READ,0,CP_UTF8);
      if(m_handle==INVALID_HANDLE)
        {
         PrintFormat("copybridge: cannot open the journal %s for writing (error %d)",m_file,GetLastError());
         return(false);
        }
      FileSeek(m_handle,0,SEEK_END);
      if(torn)
        {
         //--- end the torn line, so that the next entry starts a line of its own
         FileWriteString(m_handle,"\r\n");
         FileFlush(m_handle);
        }
      PrintFormat("copybridge: journal %s: %d lines, %d results in memory",m_file,m_lines,m_count);
      return(true);
     }

   void              Close(void)
     {
      if(m_handle!=INVALID_HANDLE)
        {
         FileFlush(m_handle);
         FileClose(m_handle);
         m_handle=INVALID_HANDLE;
        }
     }

   int               Count(void) const { return(m_count); }
   int               WriteErrors(void) const { return(m_writeErrors); }

   //--- the journalled command and result of `key`; false when the key was never journalled
   bool              Get(const string key,string &cmd,string &result)
     {
      if(!m_all.Contains(key))
         return(false);
      for(int i=1; i<=m_count; i++)
        {
         int idx=(m_next-i+m_capacity)%m_capacity;
         if(m_keys[idx]==key)
           {
            cmd=m_cmds[idx];
            result=m_results[idx];
            return(true);
           }
        }
      //--- older than the memory: read the file
      int h=FileOpen(m_file,FILE_READ|FILE_TXT|FILE_ANSI|FILE_SHARE_READ|FILE_SHARE_WRITE,0,CP_UTF8);
      if(h==INVALID_HANDLE)
         return(false);
      string needle=CbQuote(key);
      bool found=false;
      while(!FileIsEnding(h))
        {
         string line=StripEol(FileReadString(h));
         if(StringFind(line,needle)<0)
            continue;
         string k;
         if(ParseLine(line,k,cmd,result) && k==key)
           {
            found=true;
            break;
           }
        }
      FileClose(h);
      return(found);
     }

   //--- appends and flushes one entry (call BEFORE sending the reply); false when the line could not be written
   bool              Record(const string key,const string cmd,const string reply,const string result)
     {
      CbJson entry;
      entry.Str("key",key);
      entry.Str("cmd",cmd);
      entry.Raw("reply",reply);
      bool written=false;
      if(m_handle!=INVALID_HANDLE)
        {
         FileSeek(m_handle,0,SEEK_END);
         written=(FileWriteString(m_handle,entry.Text()+"\r\n")>0);
         FileFlush(m_handle);
        }
      if(!written)
        {
         m_writeErrors++;
         PrintFormat("copybridge: CANNOT WRITE THE JOURNAL %s (error %d): a resend of key %s may trade again",
                     m_file,GetLastError(),key);
        }
      m_lines++;
      m_all.Add(key);
      Remember(key,cmd,result);
      return(written);
     }
  };
//+------------------------------------------------------------------+
